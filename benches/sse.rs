//! SSE throughput and memory benchmark (in progress).

fn main() {}

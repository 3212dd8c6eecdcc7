//! The one integration-test binary: every test gets its own temporary root.

mod access;
mod access_live;
mod api_examples;
mod api_queues;
mod archive_badge;
mod cli;
mod console_socket;
mod dashboard;
mod e2e_qemu;
mod ending;
mod events_sse;
mod faults;
mod fuzz;
mod helpers;
mod hooks;
mod hostile_inputs;
mod logs_sse;
mod metrics;
mod reports;
mod repos;
mod sandbox;
mod statuses;
mod store;
mod worker;

//! The case runner shared by the short and the long run: one seed per case, the property under
//! a time bound, shrinking of a failure to a minimal input, and a watchdog for hangs.
//!
//! Environment variables, read by [`Options::from_env`]:
//! - `FUZZ_CASES`: cases per target;
//! - `FUZZ_SEED`: the base seed (hex `0x…` or decimal); case `i` gets a seed derived from it;
//! - `FUZZ_REPLAY`: run only the case with this seed, as printed with a failure;
//! - `FUZZ_SECONDS`: stop each target after this long, whatever `FUZZ_CASES` says;
//! - `FUZZ_THREADS`: worker threads per target;
//! - `FUZZ_CASE_MS`: a case whose check takes longer than this, plus as much again per MiB of
//!   input, fails (default 1,000 in an optimized build, 15,000 in a debug build): every target
//!   must take time linear in its input;
//! - `FUZZ_HANG_MS`: a case still running after this long is a hang: the watchdog prints it
//!   (as generated, not shrunk), saves it and ends the process with status 3 (default 10×
//!   `FUZZ_CASE_MS`).
//!
//! A panic is caught and reported with its message and location. A stack overflow aborts the
//! process (it cannot be caught): a `SIGABRT` handler then prints the seed of every case that was
//! running, for `FUZZ_REPLAY`.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize};
use std::sync::{Mutex, Once, OnceLock};
use std::time::{Duration, Instant};

use proptest::strategy::{BoxedStrategy, Strategy, ValueTree};
use proptest::test_runner::{Config as ProptestConfig, RngAlgorithm, TestRng, TestRunner};

use super::common::show;

/// What the code under test reads, and a note on the rest of the case (e.g. the event name).
pub struct Input {
    pub bytes: Vec<u8>,
    pub note: String,
}

impl Input {
    pub fn bytes(bytes: Vec<u8>) -> Input {
        Input {
            bytes,
            note: String::new(),
        }
    }
}

/// `Ok(outcome)`: the property holds and the case ended this way (for the statistics, e.g.
/// `"accepted"`); `Err(what)`: the property is violated.
pub type Verdict = Result<&'static str, String>;

/// A fuzz target: a generator, how a case becomes input, and the property.
pub trait Target: 'static {
    type Case: Clone + fmt::Debug;
    const NAME: &'static str;
    fn strategy() -> BoxedStrategy<Self::Case>;
    fn render(case: &Self::Case) -> Input;
    /// The property on `input`, rendered from `case` (which says what must be accepted).
    fn check(case: &Self::Case, input: &Input) -> Verdict;
    /// The property on raw bytes with no expectation (fixtures).
    fn replay(bytes: &[u8]) -> Verdict;
}

#[derive(Clone, Debug)]
pub struct Options {
    pub cases: u64,
    pub seed: u64,
    /// Run only this case.
    pub replay: Option<u64>,
    pub threads: usize,
    /// Stop a target after this long.
    pub deadline: Option<Duration>,
    /// A case whose check takes longer than this, plus as much again per MiB of input, fails.
    pub case_limit: Duration,
    /// A case running longer is a hang: printed, then the process exits.
    pub hang_limit: Duration,
    /// Print progress this often (the long run).
    pub progress: Option<Duration>,
}

impl Options {
    /// `cases` and `seed` unless the environment says otherwise (see the module documentation).
    pub fn from_env(cases: u64, seed: u64, threads: usize) -> Result<Options, String> {
        let var = |name: &str| -> Result<Option<u64>, String> {
            match std::env::var(name) {
                Err(_) => Ok(None),
                Ok(v) => parse_u64(&v)
                    .map(Some)
                    .ok_or_else(|| format!("{name}={v:?}: expected a number (decimal or 0x…)")),
            }
        };
        let default_case_ms = if cfg!(debug_assertions) {
            15_000
        } else {
            1_000
        };
        let case_ms = var("FUZZ_CASE_MS")?.unwrap_or(default_case_ms);
        Ok(Options {
            cases: var("FUZZ_CASES")?.unwrap_or(cases),
            seed: var("FUZZ_SEED")?.unwrap_or(seed),
            replay: var("FUZZ_REPLAY")?,
            threads: var("FUZZ_THREADS")?.map_or(threads, |t| t.max(1) as usize),
            deadline: var("FUZZ_SECONDS")?.map(Duration::from_secs),
            case_limit: Duration::from_millis(case_ms),
            hang_limit: Duration::from_millis(var("FUZZ_HANG_MS")?.unwrap_or(case_ms * 10)),
            progress: None,
        })
    }
}

pub fn parse_u64(s: &str) -> Option<u64> {
    let s = s.trim().replace('_', "");
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// A failing case, shrunk.
pub struct Failure {
    pub target: &'static str,
    pub seed: u64,
    pub message: String,
    /// The minimal input found.
    pub input: Input,
    pub original_len: usize,
    pub shrink_steps: u32,
    pub saved: Option<PathBuf>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "FAILED: {} case with seed {:#018x}: {}",
            self.target, self.seed, self.message
        )?;
        writeln!(
            f,
            "  replay it: FUZZ_REPLAY={:#018x} cargo bench --bench fuzz -- {}",
            self.seed, self.target
        )?;
        if !self.input.note.is_empty() {
            writeln!(f, "  case: {}", self.input.note)?;
        }
        writeln!(
            f,
            "  minimal input ({} bytes, shrunk in {} steps from {} bytes):\n  {}",
            self.input.bytes.len(),
            self.shrink_steps,
            self.original_len,
            show(&self.input.bytes, 4000)
        )?;
        if let Some(p) = &self.saved {
            writeln!(
                f,
                "  saved as {}: copy it to fixtures/fuzz/{}/ to replay it in the test suite",
                p.display(),
                self.target
            )?;
        }
        Ok(())
    }
}

/// What a run did.
pub struct Report {
    pub target: &'static str,
    pub seed: u64,
    pub cases: u64,
    pub elapsed: Duration,
    pub bytes: u64,
    pub outcomes: BTreeMap<&'static str, u64>,
    /// The slowest check and its case's seed.
    pub slowest: (Duration, u64),
    /// Cases by input size: up to 1 KiB, 16 KiB, 256 KiB, 4 MiB, more.
    pub sizes: [u64; SIZE_CLASSES],
    pub failure: Option<Failure>,
}

impl Report {
    pub fn rate(&self) -> f64 {
        self.cases as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        writeln!(
            f,
            "{}: {} cases in {:.1} s: {} cases/s, {:.1} MB/s of input (base seed {:#018x})",
            self.target,
            thousands(self.cases),
            secs,
            thousands(self.rate() as u64),
            self.bytes as f64 / secs / 1e6,
            self.seed
        )?;
        let outcomes: Vec<String> = self
            .outcomes
            .iter()
            .map(|(k, n)| {
                let share = 100.0 * *n as f64 / self.cases.max(1) as f64;
                format!("{k} {} ({share:.1}%)", thousands(*n))
            })
            .collect();
        writeln!(f, "  outcomes: {}", outcomes.join(", "))?;
        let sizes: Vec<String> = ["≤1 KiB", "≤16 KiB", "≤256 KiB", "≤4 MiB", ">4 MiB"]
            .iter()
            .zip(self.sizes)
            .map(|(class, n)| {
                format!(
                    "{class} {:.1}%",
                    100.0 * n as f64 / self.cases.max(1) as f64
                )
            })
            .collect();
        writeln!(f, "  input sizes: {}", sizes.join(", "))?;
        writeln!(
            f,
            "  slowest check: {:.1} ms (seed {:#018x})",
            self.slowest.0.as_secs_f64() * 1e3,
            self.slowest.1
        )?;
        match &self.failure {
            Some(failure) => write!(f, "{failure}"),
            None => writeln!(f, "  no failure"),
        }
    }
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

// ---- seeds ------------------------------------------------------------------------------------

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn case_seed(base: u64, i: u64) -> u64 {
    splitmix(base ^ splitmix(i))
}

fn rng_for(seed: u64) -> TestRng {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[8..].copy_from_slice(&splitmix(seed).to_le_bytes());
    TestRng::from_seed(RngAlgorithm::XorShift, &bytes)
}

fn new_runner() -> TestRunner {
    TestRunner::new_with_rng(ProptestConfig::default(), rng_for(0))
}

/// The case with seed `seed`, as generated.
fn generate<T: Target>(
    strategy: &BoxedStrategy<T::Case>,
    runner: &mut TestRunner,
    seed: u64,
) -> Option<Box<dyn ValueTree<Value = T::Case>>> {
    *runner.rng() = rng_for(seed);
    strategy.new_tree(runner).ok()
}

// ---- panics -----------------------------------------------------------------------------------

thread_local! {
    /// Inside a guarded call: the panic hook records instead of printing.
    static GUARDED: Cell<bool> = const { Cell::new(false) };
    static PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn install_hooks() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if GUARDED.with(Cell::get) {
                let at = info
                    .location()
                    .map(|l| format!(" at {}:{}:{}", l.file(), l.line(), l.column()))
                    .unwrap_or_default();
                let text = payload_text(info.payload());
                PANIC.with(|p| *p.borrow_mut() = Some(format!("{text}{at}")));
            } else {
                previous(info);
            }
        }));
        install_abort_handler();
    });
}

fn payload_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic without a message)".to_owned()
    }
}

/// Runs `f`, turning a panic into `Err` with its message and location.
fn guarded<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    GUARDED.with(|g| g.set(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(false));
    result.map_err(|payload| {
        PANIC
            .with(|p| p.borrow_mut().take())
            .unwrap_or_else(|| payload_text(&*payload))
    })
}

// ---- running cases: slots for the watchdog and the abort handler --------------------------------

/// One worker thread's current case, for the watchdog and the `SIGABRT` handler.
struct Slot {
    claimed: AtomicBool,
    running: AtomicBool,
    /// The case is being rendered (the generator's work), not checked.
    rendering: AtomicBool,
    seed: AtomicU64,
    /// Nanoseconds since [`epoch`] when the case started.
    started: AtomicU64,
    name: AtomicPtr<u8>,
    name_len: AtomicUsize,
}

impl Slot {
    const fn new() -> Slot {
        Slot {
            claimed: AtomicBool::new(false),
            running: AtomicBool::new(false),
            rendering: AtomicBool::new(false),
            seed: AtomicU64::new(0),
            started: AtomicU64::new(0),
            name: AtomicPtr::new(std::ptr::null_mut()),
            name_len: AtomicUsize::new(0),
        }
    }

    fn begin(&self, seed: u64) {
        self.seed.store(seed, Relaxed);
        self.started.store(now_nanos(), Relaxed);
        self.rendering.store(true, Relaxed);
        // Release: a watchdog that sees `running` sees this case's seed and start.
        self.running.store(true, Release);
    }

    fn end(&self) {
        self.running.store(false, Relaxed);
    }
}

static SLOTS: [Slot; 64] = [const { Slot::new() }; 64];

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_nanos() -> u64 {
    epoch().elapsed().as_nanos() as u64
}

/// A slot for one worker of target `name`, released when dropped.
struct SlotGuard(Option<&'static Slot>);

impl SlotGuard {
    fn claim(name: &'static str) -> SlotGuard {
        let slot = SLOTS.iter().find(|s| {
            s.claimed
                .compare_exchange(false, true, Relaxed, Relaxed)
                .is_ok()
        });
        if let Some(s) = slot {
            s.name.store(name.as_ptr().cast_mut(), Relaxed);
            s.name_len.store(name.len(), Relaxed);
        }
        SlotGuard(slot)
    }

    fn begin(&self, seed: u64) {
        if let Some(s) = self.0 {
            s.begin(seed);
        }
    }

    fn end(&self) {
        if let Some(s) = self.0 {
            s.end();
        }
    }

    fn rendered(&self) {
        if let Some(s) = self.0 {
            s.rendering.store(false, Relaxed);
        }
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        if let Some(s) = self.0 {
            s.running.store(false, Relaxed);
            s.claimed.store(false, Relaxed);
        }
    }
}

fn install_abort_handler() {
    extern "C" fn on_abort(signal: libc::c_int) {
        for slot in &SLOTS {
            if !slot.running.load(Relaxed) {
                continue;
            }
            let name = slot.name.load(Relaxed);
            let len = slot.name_len.load(Relaxed);
            let seed = hex(slot.seed.load(Relaxed));
            raw_write(b"\nfuzz: the process aborted during a case of target ");
            if !name.is_null() {
                // SAFETY: set from a `&'static str` when the slot was claimed.
                raw_write(unsafe { std::slice::from_raw_parts(name, len) });
            }
            raw_write(b" (a stack overflow?): replay it with FUZZ_REPLAY=0x");
            raw_write(&seed);
            raw_write(b"\n");
        }
        // SAFETY: restores the default action and raises the signal again, as if unhandled.
        unsafe {
            libc::signal(signal, libc::SIG_DFL);
            libc::raise(signal);
        }
    }
    fn raw_write(bytes: &[u8]) {
        // SAFETY: writes a valid buffer to stderr; async-signal-safe.
        unsafe {
            libc::write(2, bytes.as_ptr().cast(), bytes.len());
        }
    }
    fn hex(v: u64) -> [u8; 16] {
        let mut out = [0u8; 16];
        for (i, b) in out.iter_mut().enumerate() {
            let nibble = (v >> (60 - 4 * i)) & 0xf;
            *b = b"0123456789abcdef"[nibble as usize];
        }
        out
    }
    let handler: extern "C" fn(libc::c_int) = on_abort;
    // SAFETY: installs a handler that only does async-signal-safe work.
    unsafe {
        libc::signal(libc::SIGABRT, handler as libc::sighandler_t);
    }
}

// ---- the run ----------------------------------------------------------------------------------

struct Eval {
    outcome: &'static str,
    bytes: usize,
    time: Duration,
}

/// Renders and checks one case: `Err` when the property does not hold.
fn evaluate<T: Target>(case: &T::Case, limit: Duration, slot: &SlotGuard) -> Result<Eval, String> {
    let input = guarded(|| T::render(case))
        .map_err(|p| format!("the generator panicked (a fuzz bug): {p}"))?;
    slot.rendered();
    let started = Instant::now();
    let verdict = guarded(|| T::check(case, &input));
    let time = started.elapsed();
    let limit = limit + limit.mul_f64(input.bytes.len() as f64 / f64::from(1 << 20));
    let outcome = match verdict {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(violation)) => return Err(violation),
        Err(panic) => return Err(format!("panicked: {panic}")),
    };
    if time > limit {
        return Err(format!(
            "took {:.0} ms, more than the {} ms a case of {} bytes may take",
            time.as_secs_f64() * 1e3,
            limit.as_millis(),
            input.bytes.len()
        ));
    }
    Ok(Eval {
        outcome,
        bytes: input.bytes.len(),
        time,
    })
}

/// The property on a fixture's bytes, panics caught.
pub fn replay<T: Target>(bytes: &[u8]) -> Verdict {
    install_hooks();
    guarded(|| T::replay(bytes)).unwrap_or_else(|p| Err(format!("panicked: {p}")))
}

#[derive(Default)]
struct Stats {
    cases: u64,
    bytes: u64,
    outcomes: BTreeMap<&'static str, u64>,
    slowest: (Duration, u64),
    sizes: [u64; SIZE_CLASSES],
}

/// Input sizes are counted in classes: up to 1 KiB, 16 KiB, 256 KiB, 4 MiB, more.
const SIZE_CLASSES: usize = 5;

fn size_class(bytes: usize) -> usize {
    match bytes {
        0..=1024 => 0,
        1025..=16384 => 1,
        16385..=262_144 => 2,
        262_145..=4_194_304 => 3,
        _ => 4,
    }
}

impl Stats {
    fn merge(&mut self, other: &Stats) {
        self.cases += other.cases;
        self.bytes += other.bytes;
        for (k, n) in &other.outcomes {
            *self.outcomes.entry(k).or_default() += n;
        }
        if other.slowest.0 > self.slowest.0 {
            self.slowest = other.slowest;
        }
        for (a, b) in self.sizes.iter_mut().zip(other.sizes) {
            *a += b;
        }
    }
}

/// Shared by a run's workers and its watchdog.
struct Shared<'a> {
    options: &'a Options,
    next: AtomicU64,
    done: AtomicU64,
    bytes: AtomicU64,
    stop: AtomicBool,
    workers: AtomicUsize,
    failure: Mutex<Option<Failure>>,
    stats: Mutex<Stats>,
}

/// Runs `options.cases` cases of `T` (or the one `options.replay` names) on
/// `options.threads` threads; stops at the first failure.
pub fn run<T: Target>(options: &Options) -> Report {
    install_hooks();
    let started = Instant::now();
    let total = if options.replay.is_some() {
        1
    } else {
        options.cases
    };
    let shared = Shared {
        options,
        next: AtomicU64::new(0),
        done: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        workers: AtomicUsize::new(options.threads.max(1)),
        failure: Mutex::new(None),
        stats: Mutex::new(Stats::default()),
    };
    std::thread::scope(|scope| {
        let mut slots = Vec::new();
        for _ in 0..options.threads.max(1) {
            let guard = SlotGuard::claim(T::NAME);
            slots.push(guard.0);
            let shared = &shared;
            scope.spawn(move || {
                // Counted down however the worker ends, so the watchdog stops too.
                struct Done<'a>(&'a AtomicUsize);
                impl Drop for Done<'_> {
                    fn drop(&mut self) {
                        self.0.fetch_sub(1, Relaxed);
                    }
                }
                let _done = Done(&shared.workers);
                worker::<T>(shared, total, &guard);
            });
        }
        watch::<T>(&shared, &slots, started);
    });
    let stats = shared.stats.into_inner().unwrap_or_default();
    Report {
        target: T::NAME,
        seed: options.seed,
        cases: stats.cases,
        elapsed: started.elapsed(),
        bytes: stats.bytes,
        outcomes: stats.outcomes,
        slowest: stats.slowest,
        sizes: stats.sizes,
        failure: shared.failure.into_inner().unwrap_or(None),
    }
}

fn worker<T: Target>(shared: &Shared<'_>, total: u64, slot: &SlotGuard) {
    let o = shared.options;
    let strategy = T::strategy();
    let mut runner = new_runner();
    let mut stats = Stats::default();
    let started = Instant::now();
    while !shared.stop.load(Relaxed) {
        let i = shared.next.fetch_add(1, Relaxed);
        if i >= total {
            break;
        }
        if o.deadline.is_some_and(|d| started.elapsed() > d) {
            shared.stop.store(true, Relaxed);
            break;
        }
        let seed = o.replay.unwrap_or_else(|| case_seed(o.seed, i));
        let mut tree = match guarded(|| generate::<T>(&strategy, &mut runner, seed)) {
            Ok(Some(tree)) => tree,
            Ok(None) => continue,
            Err(panic) => {
                shared.stop.store(true, Relaxed);
                let mut first = shared.failure.lock().unwrap_or_else(|e| e.into_inner());
                first.get_or_insert(Failure {
                    target: T::NAME,
                    seed,
                    message: format!("the generator panicked (a fuzz bug): {panic}"),
                    input: Input::bytes(Vec::new()),
                    original_len: 0,
                    shrink_steps: 0,
                    saved: None,
                });
                break;
            }
        };
        let case = tree.current();
        slot.begin(seed);
        let result = evaluate::<T>(&case, o.case_limit, slot);
        slot.end();
        match result {
            Ok(eval) => {
                stats.cases += 1;
                stats.bytes += eval.bytes as u64;
                stats.sizes[size_class(eval.bytes)] += 1;
                *stats.outcomes.entry(eval.outcome).or_default() += 1;
                if eval.time > stats.slowest.0 {
                    stats.slowest = (eval.time, seed);
                }
                shared.done.fetch_add(1, Relaxed);
                shared.bytes.fetch_add(eval.bytes as u64, Relaxed);
            }
            Err(why) => {
                stats.cases += 1;
                shared.stop.store(true, Relaxed);
                let failure = shrink::<T>(tree.as_mut(), case, why, seed, o, slot);
                let mut first = shared.failure.lock().unwrap_or_else(|e| e.into_inner());
                first.get_or_insert(failure);
                break;
            }
        }
    }
    let mut all = shared.stats.lock().unwrap_or_else(|e| e.into_inner());
    all.merge(&stats);
}

/// Longest time spent shrinking one failure.
const SHRINK_TIME: Duration = Duration::from_secs(120);
const SHRINK_STEPS: u32 = 5000;

fn shrink<T: Target>(
    tree: &mut dyn ValueTree<Value = T::Case>,
    first: T::Case,
    why: String,
    seed: u64,
    o: &Options,
    slot: &SlotGuard,
) -> Failure {
    let original_len = guarded(|| T::render(&first).bytes.len()).unwrap_or(0);
    let mut minimal = (first, why);
    let started = Instant::now();
    let mut steps = 0;
    if tree.simplify() {
        while steps < SHRINK_STEPS && started.elapsed() < SHRINK_TIME {
            steps += 1;
            let candidate = tree.current();
            slot.begin(seed);
            let result = evaluate::<T>(&candidate, o.case_limit, slot);
            slot.end();
            match result {
                Err(why) => {
                    minimal = (candidate, why);
                    if !tree.simplify() {
                        break;
                    }
                }
                Ok(_) => {
                    if !tree.complicate() {
                        break;
                    }
                }
            }
        }
    }
    let input = guarded(|| T::render(&minimal.0)).unwrap_or_else(|p| Input {
        bytes: Vec::new(),
        note: format!("(rendering panicked: {p})"),
    });
    let saved = save(T::NAME, seed, &input.bytes);
    Failure {
        target: T::NAME,
        seed,
        message: minimal.1,
        input,
        original_len,
        shrink_steps: steps,
        saved,
    }
}

/// Saves a failing input under `$CARGO_TARGET_TMPDIR/fuzz-failures/<target>/`.
fn save(target: &str, seed: u64, bytes: &[u8]) -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("fuzz-failures")
        .join(target);
    std::fs::create_dir_all(&dir).ok()?;
    let path = dir.join(format!("{seed:016x}"));
    std::fs::write(&path, bytes).ok()?;
    Some(path)
}

/// Until the workers are done: progress lines, and the hang check.
fn watch<T: Target>(shared: &Shared<'_>, slots: &[Option<&'static Slot>], started: Instant) {
    let o = shared.options;
    let mut last_progress = Instant::now();
    while shared.workers.load(Relaxed) > 0 {
        std::thread::sleep(Duration::from_millis(50));
        for slot in slots.iter().flatten() {
            // Acquire: the seed and start read next are those of the running case.
            if !slot.running.load(Acquire) {
                continue;
            }
            let (seed, rendering) = (slot.seed.load(Relaxed), slot.rendering.load(Relaxed));
            let ran = now_nanos().saturating_sub(slot.started.load(Relaxed));
            if ran > o.hang_limit.as_nanos() as u64 && slot.seed.load(Relaxed) == seed {
                hang::<T>(seed, Duration::from_nanos(ran), rendering);
            }
        }
        if let Some(every) = o.progress
            && last_progress.elapsed() >= every
        {
            last_progress = Instant::now();
            let done = shared.done.load(Relaxed);
            let secs = started.elapsed().as_secs_f64();
            let mut err = std::io::stderr();
            let _ = writeln!(
                err,
                "  {}: {} cases in {:.0} s, {} cases/s, {:.1} MB/s",
                T::NAME,
                thousands(done),
                secs,
                thousands((done as f64 / secs) as u64),
                shared.bytes.load(Relaxed) as f64 / secs / 1e6
            );
        }
    }
}

/// A case that does not end: print it as generated, save it, and end the process (a thread
/// cannot be stopped).
fn hang<T: Target>(seed: u64, ran: Duration, rendering: bool) -> ! {
    let mut runner = new_runner();
    let input = generate::<T>(&T::strategy(), &mut runner, seed)
        .and_then(|tree| guarded(|| T::render(&tree.current())).ok());
    let mut err = std::io::stderr();
    let _ = writeln!(
        err,
        "\nFAILED: {} case with seed {seed:#018x} has been running for {:.1} s: a hang{}\n  replay it: FUZZ_REPLAY={seed:#018x} cargo bench --bench fuzz -- {}",
        T::NAME,
        ran.as_secs_f64(),
        if rendering {
            " of the generator, while rendering the case (a fuzz bug)"
        } else {
            ""
        },
        T::NAME
    );
    if let Some(input) = input {
        let saved = save(T::NAME, seed, &input.bytes);
        let _ = writeln!(
            err,
            "  case: {}\n  input as generated ({} bytes):\n  {}",
            input.note,
            input.bytes.len(),
            show(&input.bytes, 4000)
        );
        if let Some(p) = saved {
            let _ = writeln!(
                err,
                "  saved as {}: copy it to fixtures/fuzz/{}/",
                p.display(),
                T::NAME
            );
        }
    }
    std::process::exit(3);
}

//! A real single-node Slurm for the tests: munged, slurmctld and slurmd started in the
//! foreground under a temporary directory with their own `slurm.conf`, munge key and ports, once
//! per test process ([`Cluster::shared`]). The client commands reach it through `SLURM_CONF`,
//! never through the machine's own configuration.
//!
//! Stopped at process exit (an `atexit` hook: a static is never dropped), or with the process
//! (`PR_SET_PDEATHSIG`, the daemons being children of a thread that never ends) when the test
//! binary is killed. A missing program fails the test with what to install, never skips it.

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use testarena::exec::slurm::Slurm;

/// The partition of the test cluster.
pub const PARTITION: &str = "testarena";

/// The node's name (slurmd is told it with `-N`, so the machine's host name does not matter).
const NODE: &str = "ta-node";

/// How long the daemons may take to bring the node up.
const START: Duration = Duration::from_secs(60);

/// The programs the cluster needs, with their Debian packages.
const TOOLS: [(&str, &str); 8] = [
    ("munged", "munge"),
    ("slurmctld", "slurmctld"),
    ("slurmd", "slurmd"),
    ("salloc", "slurm-client"),
    ("srun", "slurm-client"),
    ("squeue", "slurm-client"),
    ("scancel", "slurm-client"),
    ("sinfo", "slurm-client"),
];

pub struct Cluster {
    dir: PathBuf,
    conf: PathBuf,
    /// The same cluster's configuration with a controller port nothing listens on.
    dead_conf: PathBuf,
    /// CPUs of the node (the machine's).
    pub cpus: usize,
    /// Daemons in start order; emptied by [`Cluster::stop`].
    daemons: Mutex<Vec<(&'static str, Child)>>,
}

static SHARED: OnceLock<Cluster> = OnceLock::new();

extern "C" fn stop_shared() {
    if let Some(cluster) = SHARED.get() {
        cluster.stop();
    }
}

impl Cluster {
    /// The test process's cluster, started by the first test that asks.
    pub fn shared() -> &'static Cluster {
        SHARED.get_or_init(|| {
            let cluster = start_in_keeper();
            // SAFETY: registers a plain function; it runs once, at exit.
            unsafe { libc::atexit(stop_shared) };
            cluster
        })
    }

    /// The cluster's `slurm.conf`.
    pub fn conf(&self) -> &std::path::Path {
        &self.conf
    }

    /// A client of this cluster, with short polls and a 1 s grace.
    pub fn slurm(&self) -> Slurm {
        let mut slurm = Slurm::new(PARTITION);
        slurm.conf = Some(self.conf.clone());
        slurm.grace = Duration::from_secs(1);
        slurm.poll = Duration::from_millis(200);
        slurm.command_timeout = Duration::from_secs(30);
        slurm
    }

    /// A client of this cluster whose controller does not answer (a port nothing listens on).
    pub fn unreachable(&self) -> Slurm {
        Slurm {
            conf: Some(self.dead_conf.clone()),
            ..self.slurm()
        }
    }

    /// A client command (`squeue`, `salloc`, …) pointed at this cluster.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command.env("SLURM_CONF", &self.conf).current_dir(&self.dir);
        command
    }

    /// Cancels every job, then stops the daemons and removes the directory. Idempotent.
    pub fn stop(&self) {
        let mut daemons = self.daemons.lock().unwrap_or_else(|e| e.into_inner());
        if daemons.is_empty() {
            return;
        }
        let _ = self
            .command("scancel")
            .args(["--partition", PARTITION])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && !self.squeue_empty() {
            std::thread::sleep(Duration::from_millis(100));
        }
        for (_, child) in daemons.iter_mut().rev() {
            stop_child(child);
        }
        daemons.clear();
        let _ = fs::remove_dir_all(&self.dir);
    }

    fn squeue_empty(&self) -> bool {
        self.command("squeue")
            .args(["--noheader", "--format=%i"])
            .output()
            .is_ok_and(|o| o.status.success() && o.stdout.is_empty())
    }

    /// Starts the daemons and waits until the node is idle.
    fn start() -> Cluster {
        let missing: Vec<String> = TOOLS
            .iter()
            .filter(|(bin, _)| which(bin).is_none())
            .map(|(bin, package)| format!("{bin} (Debian package {package})"))
            .collect();
        assert!(
            missing.is_empty(),
            "the Slurm tests need {}; scripts/test installs them, or run \
             `apt-get install --no-install-recommends slurmctld slurmd slurm-client munge`",
            missing.join(", ")
        );
        let dir = tempfile::Builder::new()
            .prefix("testarena-slurm-")
            .tempdir()
            .expect("temp dir")
            .keep();
        for sub in ["state", "spool", "log", "munge"] {
            fs::create_dir(dir.join(sub)).expect("cluster directory");
        }
        let munge = dir.join("munge");
        fs::set_permissions(&munge, fs::Permissions::from_mode(0o755)).expect("chmod");
        let key = munge.join("munge.key");
        let mut secret = [0u8; 1024];
        getrandom::fill(&mut secret).expect("random key");
        fs::write(&key, secret).expect("munge key");
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).expect("chmod");

        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (ctld_port, slurmd_port, dead_port) = (free_port(), free_port(), free_port());
        let conf = dir.join("slurm.conf");
        let dead_conf = dir.join("unreachable.conf");
        fs::write(&conf, slurm_conf(&dir, cpus, ctld_port, slurmd_port, None)).expect("conf");
        fs::write(
            &dead_conf,
            slurm_conf(&dir, cpus, dead_port, slurmd_port, Some(2)),
        )
        .expect("conf");

        let cluster = Cluster {
            dir: dir.clone(),
            conf: conf.clone(),
            dead_conf,
            cpus,
            daemons: Mutex::new(Vec::new()),
        };
        let socket = munge.join("munge.socket");
        cluster.spawn(
            "munged",
            &[
                "--foreground",
                "--force",
                &format!("--key-file={}", key.display()),
                &format!("--socket={}", socket.display()),
                &format!("--pid-file={}", munge.join("munged.pid").display()),
                &format!("--log-file={}", dir.join("log/munged.log").display()),
                &format!("--seed-file={}", munge.join("munged.seed").display()),
            ],
        );
        cluster.wait_for("munged's socket", || socket.exists());
        let conf_arg = conf.display().to_string();
        cluster.spawn("slurmctld", &["-D", "-i", "-f", &conf_arg]);
        cluster.spawn("slurmd", &["-D", "-f", &conf_arg, "-N", NODE]);
        cluster.wait_for("the node to be idle", || {
            cluster
                .command("sinfo")
                .args(["--noheader", "--Node", "--nodes", NODE, "--format=%T"])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "idle")
        });
        cluster
    }

    /// Starts a daemon in the foreground, its output in `log/<program>.out`, signalled with
    /// `SIGTERM` when the thread that started it (the keeper) ends with the process.
    fn spawn(&self, program: &'static str, args: &[&str]) {
        let out = fs::File::create(self.dir.join(format!("log/{program}.out"))).expect("log");
        let mut command = Command::new(which(program).expect("checked at start"));
        command
            .args(args)
            .env("SLURM_CONF", &self.conf)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out);
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        self.daemons
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((program, child));
    }

    /// Polls `ready` every 50 ms (the daemons announce nothing) until it holds; fails with the
    /// daemons' logs when one died or `START` passed.
    fn wait_for(&self, what: &str, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + START;
        loop {
            if ready() {
                return;
            }
            let dead: Vec<String> = self
                .daemons
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter_mut()
                .filter_map(|(name, child)| {
                    child
                        .try_wait()
                        .ok()
                        .flatten()
                        .map(|status| format!("{name} exited: {status}"))
                })
                .collect();
            if !dead.is_empty() || Instant::now() > deadline {
                let logs = self.logs();
                self.stop();
                panic!("the test Slurm did not start ({what}): {dead:?}\n{logs}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last lines of every daemon's log, for a failure message.
    fn logs(&self) -> String {
        let mut text = String::new();
        let Ok(entries) = fs::read_dir(self.dir.join("log")) else {
            return text;
        };
        for entry in entries.flatten() {
            let body = fs::read_to_string(entry.path()).unwrap_or_default();
            let lines: Vec<&str> = body.lines().collect();
            let tail = lines[lines.len().saturating_sub(15)..].join("\n");
            text.push_str(&format!("--- {}\n{tail}\n", entry.path().display()));
        }
        text
    }
}

/// Starts the cluster from a thread that never ends, so that `PR_SET_PDEATHSIG` fires only when
/// the process ends (it fires when the thread that forked the daemon does).
fn start_in_keeper() -> Cluster {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("slurm-keeper".into())
        .spawn(move || {
            let _ = tx.send(std::panic::catch_unwind(Cluster::start));
            loop {
                std::thread::park();
            }
        })
        .expect("keeper thread");
    match rx.recv().expect("the keeper answers") {
        Ok(cluster) => cluster,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// `SIGTERM`, up to 5 s, then `SIGKILL`.
fn stop_child(child: &mut Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: our own child, not reaped yet, so the pid is still ours.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// `bin` from `PATH` or the `sbin` directories (which a user's `PATH` may lack).
fn which(bin: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(bin))
        .find(|p| p.is_file())
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// The cluster's `slurm.conf`: one node with the machine's CPUs, one partition, no cgroups
/// (`proctrack/linuxproc`, `task/none`), no accounting, everything under `dir`, root as the
/// Slurm user. `message_timeout` shortens the clients' wait for a controller that is down.
fn slurm_conf(
    dir: &Path,
    cpus: usize,
    ctld_port: u16,
    slurmd_port: u16,
    message_timeout: Option<u32>,
) -> String {
    let d = dir.display();
    let timeout = message_timeout.map_or(String::new(), |t| format!("MessageTimeout={t}\n"));
    format!(
        "ClusterName=testarena
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={d}/munge/munge.socket
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/log/slurmctld.log
SlurmdLogFile={d}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
KillWait=2
InactiveLimit=10
MinJobAge=10
{timeout}NodeName={NODE} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP
"
    )
}

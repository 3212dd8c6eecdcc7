//! Step specs, waiting reasons, job names and errors.

use super::*;

#[test]
fn a_step_keeps_the_spec_s_directory_environment_and_stdin() {
    let mut slurm = Slurm::new("p");
    slurm.conf = Some("/etc/cluster/slurm.conf".into());
    let alloc = Allocation {
        job: JobId(5),
        name: "testarena/q".into(),
    };
    let spec = Spec::new(vec!["qemu".into(), "-nographic".into()], "/data/q/repo")
        .env("A", "1")
        .with_stdin();
    let mut confined = spec.clone();
    confined.clean_env = true;
    let step = slurm.step(&alloc, confined, "testarena/q/boot", None);
    assert_eq!(step.cwd, spec.cwd);
    assert!(step.stdin && step.clean_env);
    assert_eq!(
        step.env,
        [
            ("A".into(), "1".into()),
            ("SLURM_CONF".into(), "/etc/cluster/slurm.conf".into())
        ]
    );
    assert_eq!(step.argv[0], "srun");
    assert!(step.argv.contains(&"--jobid=5".into()));
    assert!(step.argv.ends_with(&["qemu".into(), "-nographic".into()]));
}

#[test]
fn waiting_reads_as_a_reason() {
    let pending = Waiting::Pending {
        job: JobId(123),
        reason: "Resources".into(),
    };
    assert_eq!(pending.to_string(), "job 123 pending (Resources)");
    assert_eq!(pending.job(), JobId(123));
    let silent = Waiting::NoAnswer {
        job: JobId(9),
        detail: "timeout".into(),
    };
    assert!(silent.to_string().contains("does not answer"), "{silent}");
}

#[test]
fn names_and_errors() {
    assert!(check_name("testarena/q-1.x/boot_2").is_ok());
    for bad in ["", "a,b", "a b"] {
        assert!(check_name(bad).is_err(), "{bad:?}");
    }
    assert!(SlurmError::Unavailable("x".into()).is_unavailable());
    assert!(!SlurmError::Ended("x".into()).is_unavailable());
    assert_eq!("42".parse::<JobId>().unwrap(), JobId(42));
    assert!("4.2".parse::<JobId>().is_err());
}

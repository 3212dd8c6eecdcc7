//! Configuration: defaults, layering, errors that name the key.

use super::*;

#[test]
fn defaults_match_the_example_file() {
    let c = Config::defaults();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.root, PathBuf::from("/testarena"));
    assert_eq!(c.api.max_body, 1 << 20);
    assert_eq!(c.worker.slots, 1);
    assert_eq!(c.worker.max_attempts, 2);
    assert_eq!(c.worker.kill_grace, Duration::from_secs(5));
    assert_eq!(c.worker.silence_timeout, None);
    assert_eq!(c.environment_names(), ["esp32", "xtensa-sim"]);
    let esp = c.environment("esp32").unwrap();
    assert_eq!(esp.build, ["idf.py", "build"]);
    assert_eq!(esp.ready, "Calling app_main");
    assert_eq!(esp.build_timeout, Duration::from_secs(1200));
}

#[test]
fn a_file_overrides_and_adds_environments() {
    let c = Config::from_toml(
        "my.toml",
        r#"
        listen = "0.0.0.0:9000"
        [worker]
        slots = 0
        silence_timeout = "30s"
        [environments.esp32]
        boot_timeout = 90
        [environments.local]
        build = ["true"]
        simulate = ["cat"]
        ready = "hi"
        build_timeout = "1m"
        boot_timeout = "5s"
        max_parallel = 1
        [auth]
        anonymous = "read"
        "#,
    )
    .unwrap();
    assert_eq!(c.listen.port(), 9000);
    assert_eq!(c.worker.slots, 0);
    assert_eq!(c.worker.silence_timeout, Some(Duration::from_secs(30)));
    assert_eq!(
        c.environment("esp32").unwrap().boot_timeout,
        Duration::from_secs(90)
    );
    assert_eq!(c.environment("esp32").unwrap().build, ["idf.py", "build"]);
    assert_eq!(c.environment("local").unwrap().max_parallel, Some(1));
}

fn err(text: &str) -> String {
    Config::from_toml("my.toml", text).unwrap_err().to_string()
}

#[test]
fn errors_name_the_file_and_the_key() {
    let e = err("colour = 1");
    assert!(e.starts_with("my.toml:") && e.contains("colour"), "{e}");
    let e = err("[worker]\nslotz = 1");
    assert!(e.contains("slotz"), "{e}");
    let e = err("[environments.esp32]\nboot_timeout = \"soon\"");
    assert!(e.contains("boot_timeout") || e.contains("soon"), "{e}");
    let e = err("listen = \"nowhere\"");
    assert!(e.contains("listen") && e.contains("HOST:PORT"), "{e}");
    let e = err(
        "[environments.x]\nbuild = []\nsimulate=[\"a\"]\nready=\"r\"\nbuild_timeout=\"1s\"\nboot_timeout=\"1s\"",
    );
    assert!(e.contains("environments.x.build"), "{e}");
    let e = err("[environments.y]\nbuild = [\"make\"]");
    assert!(e.contains("environments.y."), "{e}");
    let e = err("[api]\nmax_body = \"lots\"");
    assert!(e.contains("lots"), "{e}");
    let e = err("[environments.esp32]\nconsole = \"serial\"");
    assert!(
        e.contains("environments.esp32.console") && e.contains("unix:PATH"),
        "{e}"
    );
    let e = err("[environments.esp32]\nconsole = \"tcp:127.0.0.1:5555\"");
    assert!(e.contains("max_parallel = 1"), "{e}");
    let e = err("[environments.esp32]\nmax_parallel = 0");
    assert!(e.contains("max_parallel"), "{e}");
}

#[test]
fn environment_overrides_and_flags() {
    let env = [
        ("TESTARENA_ROOT".to_owned(), "/srv/ta".to_owned()),
        ("TESTARENA_WORKER_SLOTS".to_owned(), "3".to_owned()),
        ("TESTARENA_QUEUE_ID".to_owned(), "ignored".to_owned()),
    ];
    let o = Overrides {
        listen: Some("127.0.0.1:0".into()),
        ..Overrides::default()
    };
    let c = Config::load(&o, env).unwrap();
    assert_eq!(c.root, PathBuf::from("/srv/ta"));
    assert_eq!(c.worker.slots, 3);
    assert_eq!(c.listen.port(), 0);
    let bad = [("TESTARENA_WORKER_SLOTS".to_owned(), "many".to_owned())];
    let e = Config::load(&Overrides::default(), bad)
        .unwrap_err()
        .to_string();
    assert!(e.contains("TESTARENA_WORKER_SLOTS"), "{e}");
}

#[test]
fn an_environment_without_timeouts_gets_the_defaults() {
    let c = Config::from_toml(
        "t.toml",
        "[environments.bare]\nbuild = [\"make\"]\nsimulate = [\"sim\"]\nready = \"up\"\n",
    )
    .unwrap();
    let bare = c.environment("bare").unwrap();
    assert_eq!(bare.build_timeout, Duration::from_secs(30 * 60));
    assert_eq!(bare.boot_timeout, Duration::from_secs(60));
    // Written as zero, it is still refused.
    let e = err("[environments.esp32]\nboot_timeout = \"0s\"");
    assert!(
        e.contains("environments.esp32.boot_timeout: must be a duration above zero"),
        "{e}"
    );
}

#[test]
fn boards_and_max_boards() {
    let c = Config::from_toml(
        "t.toml",
        "[worker]\nmax_boards = 3\n[environments.esp32]\nboards = 4\n",
    )
    .unwrap();
    assert_eq!(c.environment("esp32").unwrap().boards, 4);
    assert_eq!(c.environment("xtensa-sim").unwrap().boards, 1);
    assert_eq!(c.worker.max_boards, Some(3));
    assert_eq!(Config::defaults().worker.max_boards, None, "0 = no limit");
    let e = err("[environments.esp32]\nboards = 0");
    assert!(
        e.contains("environments.esp32.boards: must be at least 1"),
        "{e}"
    );
    let e =
        err("[environments.esp32]\nboards = 2\nmax_parallel = 1\nconsole = \"tcp:127.0.0.1:5555\"");
    assert!(e.contains("set boards = 1"), "{e}");
}

#[test]
fn the_slurm_executor_and_its_keys() {
    let c = Config::from_toml(
        "t.toml",
        "[environments.farm]\nbuild = [\"make\"]\nsimulate = [\"sim\"]\nready = \"up\"\n\
         executor = \"slurm\"\npartition = \"lab\"\nqos = \"fast\"\nsrun_args = [\"--cpus-per-task=2\"]\n",
    )
    .unwrap();
    assert_eq!(
        c.environment("farm").unwrap().executor,
        ExecutorKind::Slurm(SlurmEnv {
            partition: "lab".into(),
            account: None,
            qos: Some("fast".into()),
            srun_args: vec!["--cpus-per-task=2".into()],
            conf: None,
        })
    );
    assert_eq!(
        c.environment("esp32").unwrap().executor,
        ExecutorKind::Local
    );
    let e = err("[environments.esp32]\nexecutor = \"slurm\"");
    assert!(
        e.contains("environments.esp32.partition: executor = \"slurm\" needs"),
        "{e}"
    );
    let e = err("[environments.esp32]\npartition = \"lab\"");
    assert!(e.contains("applies only with executor = \"slurm\""), "{e}");
    let e = err("[environments.esp32]\nexecutor = \"k8s\"");
    assert!(e.contains("\"k8s\" is not an executor"), "{e}");
    let e = err(
        "[environments.esp32]\nexecutor = \"slurm\"\npartition = \"lab\"\nsrun_args = [\"--jobid=5\"]",
    );
    assert!(e.contains("set by the Slurm executor itself"), "{e}");
    let e = err("[environments.esp32]\nexecutor = \"slurm\"\npartition = \"a b\"");
    assert!(e.contains("must be one word"), "{e}");
}

#[test]
fn an_unknown_testarena_variable_is_refused_by_name() {
    let load = |name: &str| {
        let env = [(name.to_owned(), "1".to_owned())];
        Config::load(&Overrides::default(), env)
    };
    let e = load("TESTARENA_WORKER_SLOTZ").unwrap_err().to_string();
    assert!(
        e.starts_with("environment variable TESTARENA_WORKER_SLOTZ: unknown variable"),
        "{e}"
    );
    assert!(
        e.contains("TESTARENA_WORKER_SLOTS") && e.contains("TESTARENA_SERVER"),
        "says which exist: {e}"
    );
    for name in OTHER_VARIABLES {
        assert!(load(name).is_ok(), "{name} is not configuration, but known");
    }
    assert!(load("NOT_TESTARENA_X").is_ok(), "not ours");
}

#[test]
fn every_configuration_variable_is_read() {
    // A variable the list names but `apply_env` does not read would be refused as unknown
    // with a bad value accepted, or the other way round: each one must reach its key.
    for name in CONFIG_VARIABLES {
        let env = [(name.to_string(), "not a valid value\u{0}".to_owned())];
        let result = Config::load(&Overrides::default(), env);
        if let Err(e) = result {
            assert!(!e.to_string().contains("unknown variable"), "{name}: {e}");
        }
    }
}

#[test]
fn a_relative_root_is_resolved_against_the_current_directory() {
    let o = Overrides {
        root: Some(PathBuf::from("rel/data")),
        ..Overrides::default()
    };
    let c = Config::load(&o, []).unwrap();
    assert_eq!(c.root, std::env::current_dir().unwrap().join("rel/data"));
    let env = [("TESTARENA_ROOT".to_owned(), "./data".to_owned())];
    let c = Config::load(&Overrides::default(), env).unwrap();
    assert!(c.root.is_absolute(), "{}", c.root.display());
}

#[test]
fn gitea_section_defaults_overrides_and_errors() {
    let d = Config::defaults().gitea;
    assert_eq!(d.secret, None, "webhooks are off until a secret is set");
    assert_eq!(d.environments, ["esp32"]);
    assert!(d.scenarios.is_empty() && d.branches.is_empty());

    let env = [
        ("TESTARENA_GITEA_SECRET".to_owned(), "from-env".to_owned()),
        (
            "TESTARENA_GITEA_ENVIRONMENT".to_owned(),
            "xtensa-sim".to_owned(),
        ),
    ];
    let c = Config::load(&Overrides::default(), env).unwrap();
    assert_eq!(
        c.gitea.secret.as_ref().map(Secret::expose),
        Some(&b"from-env"[..])
    );
    assert_eq!(c.gitea.environments, ["xtensa-sim"]);
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("from-env"),
        "the secret never shows: {shown}"
    );

    let e = err("[gitea]\nenvironment = \"stm32\"");
    assert!(
        e.contains("my.toml") && e.contains("gitea.environment"),
        "{e}"
    );
    assert!(e.contains("esp32, xtensa-sim"), "{e}");
    // `environments` lists several; `environment` is its shorthand, and a layer that sets
    // either replaces what the layer below set with the other.
    let c = Config::from_toml(
        "t.toml",
        "[gitea]\nenvironments = [\"xtensa-sim\", \"esp32\"]\n",
    )
    .unwrap();
    assert_eq!(c.gitea.environments, ["xtensa-sim", "esp32"]);
    assert!(c.gitea.cancel_superseded, "on by default");
    let c = Config::from_toml(
        "t.toml",
        "[gitea]\nenvironment = \"xtensa-sim\"\ncancel_superseded = false\n",
    )
    .unwrap();
    assert_eq!(c.gitea.environments, ["xtensa-sim"]);
    assert!(!c.gitea.cancel_superseded);
    let e = err("[gitea]\nenvironment = \"esp32\"\nenvironments = [\"esp32\"]");
    assert!(e.contains("keep one"), "{e}");
    let e = err("[gitea]\nenvironments = []");
    assert!(e.contains("at least one environment"), "{e}");
    let e = err("[gitea]\nenvironments = [\"esp32\", \"esp32\"]");
    assert!(e.contains("listed twice"), "{e}");
    let e = err("[gitea]\nenvironments = [\"esp32\", \"stm32\"]");
    assert!(
        e.contains("gitea.environments: unknown environment \"stm32\""),
        "{e}"
    );
    let e = err("[gitea]\nscenarios = [\"../x.xml\"]");
    assert!(e.contains("gitea.scenarios"), "{e}");
    let e = err("[gitea]\nhook_secret = \"x\"");
    assert!(e.contains("my.toml") && e.contains("hook_secret"), "{e}");
}

#[test]
fn gitea_statuses_need_a_url_and_a_token() {
    assert!(Config::defaults().gitea.statuses.is_none());
    let c = Config::from_toml(
        "my.toml",
        "[gitea]\nurl = \"https://gitea.example.org/\"\ntoken = \"t0k\"\n",
    )
    .unwrap();
    let s = c.gitea.statuses.clone().expect("configured");
    assert_eq!(s.url, "https://gitea.example.org", "no trailing slash");
    assert_eq!(s.dashboard_url, None);
    assert!(!format!("{c:?}").contains("t0k"), "the token never shows");
    let e = err("[gitea]\nurl = \"https://gitea.example.org\"");
    assert!(
        e.contains("gitea.token") && e.contains("TESTARENA_GITEA_TOKEN"),
        "{e}"
    );
    let e = err("[gitea]\nurl = \"gitea.example.org\"\ntoken = \"t\"");
    assert!(e.contains("gitea.url") && e.contains("http"), "{e}");
}

#[test]
fn allowed_repos_default_file_env_and_errors() {
    let d = Config::defaults().worker.allowed_repos;
    assert_eq!(d.git_protocols(), "https:ssh", "https, ssh and scp-style");
    assert!(d.check("https://gitea.example.org/fw.git").is_ok());
    assert!(d.check("git@gitea.example.org:fw.git").is_ok());
    assert!(d.check("/srv/git/fw").is_err(), "no local paths");
    assert!(d.check("file:///srv/git/fw").is_err());

    let c = Config::from_toml(
        "my.toml",
        "[worker]\nallowed_repos = [\"https://gitea.example.org/\", \"/srv/git/\"]\n",
    )
    .unwrap();
    let a = &c.worker.allowed_repos;
    assert_eq!(a.git_protocols(), "https:file");
    assert!(a.check("/srv/git/fw").is_ok());
    assert!(a.check("https://github.com/x/fw.git").is_err());

    let env = [(
        "TESTARENA_WORKER_ALLOWED_REPOS".to_owned(),
        "/tmp/demo-repo, git@gitea.example.org:".to_owned(),
    )];
    let c = Config::load(&Overrides::default(), env).unwrap();
    let a = &c.worker.allowed_repos;
    assert!(a.check("/tmp/demo-repo").is_ok());
    assert!(a.check("git@gitea.example.org:team/fw.git").is_ok());
    assert!(
        a.check("https://gitea.example.org/fw.git").is_err(),
        "replaced"
    );
    assert_eq!(a.git_protocols(), "file:ssh");

    for (entry, says) in [
        ("\"srv/git\"", "absolute directory"),
        ("\"\"", "must not be empty"),
        ("\"file:///srv/git\"", "list the directory itself"),
    ] {
        let e = err(&format!("[worker]\nallowed_repos = [{entry}]"));
        assert!(
            e.contains("my.toml") && e.contains("worker.allowed_repos") && e.contains(says),
            "{e}"
        );
    }
    let e = err("[worker]\nallowed_repos = []");
    assert!(e.contains("worker.allowed_repos"), "{e}");
}

const HASH: &str = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

#[test]
fn auth_defaults_tokens_and_errors() {
    use crate::auth::{Anonymous, Scope};
    let d = Config::defaults();
    assert!(d.auth.tokens.is_empty());
    assert_eq!(d.auth.anonymous, Anonymous::Write, "loopback, no tokens");
    assert!(!d.auth.anonymous_explicit);
    assert_eq!(d.auth.session_ttl, Duration::from_secs(12 * 3600));

    let c = Config::from_toml(
        "my.toml",
        &format!(
            "[auth]\ntokens = [\n  {{ name = \"ci\", scope = \"write\", hash = \"{HASH}\" }},\n]\nsession_ttl = \"30m\"\n"
        ),
    )
    .unwrap();
    assert_eq!(
        c.auth.anonymous,
        Anonymous::Read,
        "a token: anonymous reads"
    );
    assert_eq!(c.auth.tokens.verify("abc").unwrap().scope, Scope::Write);
    assert_eq!(c.auth.session_ttl, Duration::from_secs(1800));
    assert!(!format!("{c:?}").contains(&HASH[7..]), "no hash in Debug");

    let entry = |fields: &str| err(&format!("[auth]\ntokens = [{{ {fields} }}]"));
    let e = entry("name = \"ci\", scope = \"write\", hash = \"sha256:abc\"");
    assert!(
        e.starts_with("my.toml: auth.tokens[0].hash (token \"ci\"):")
            && e.contains("64 hex digits")
            && e.contains("testarena token new NAME"),
        "{e}"
    );
    let e = entry("name = \"ci\", scope = \"write\", hash = \"ta_0123456789\"");
    assert!(
        e.contains("not its hash") && !e.contains("0123456789"),
        "{e}"
    );
    let e = entry(&format!("name = \"ci\", hash = \"{HASH}\""));
    assert!(e.contains("auth.tokens[0].scope: missing"), "{e}");
    let e = entry(&format!(
        "name = \"ci\", scope = \"owner\", hash = \"{HASH}\""
    ));
    assert!(e.contains("my.toml") && e.contains("owner"), "{e}");
    let e = entry(&format!(
        "name = \"c i\", scope = \"read\", hash = \"{HASH}\""
    ));
    assert!(
        e.contains("auth.tokens") && e.contains("letters, digits"),
        "{e}"
    );
    let e = entry(&format!(
        "name = \"ci\", scope = \"read\", hash = \"{HASH}\", note = 1"
    ));
    assert!(e.contains("note"), "{e}");
    let e = err(&format!(
        "[auth]\ntokens = [\n{{ name = \"ci\", scope = \"read\", hash = \"{HASH}\" }},\n{{ name = \"ci\", scope = \"write\", hash = \"{}\" }},\n]",
        crate::auth::TokenHash::of("other")
    ));
    assert!(
        e.contains("auth.tokens: two tokens are named \"ci\""),
        "{e}"
    );
    let e = err("[auth]\nanonymous = \"all\"");
    assert!(e.contains("all") && e.contains("anonymous"), "{e}");
    let e = err("[auth]\nsession_ttl = \"0s\"");
    assert!(e.contains("auth.session_ttl"), "{e}");
    let e = err("[auth]\nsession_ttl = \"9601h\"");
    assert!(
        e.contains("auth.session_ttl") && e.contains("400 days"),
        "{e}"
    );
}

#[test]
fn an_open_address_needs_a_token_or_an_explicit_anonymous() {
    use crate::auth::Anonymous;
    let e = err("listen = \"0.0.0.0:8080\"");
    assert!(
        e.starts_with("my.toml: auth: listening on 0.0.0.0:8080")
            && e.contains("testarena token new NAME --scope write")
            && e.contains("[auth] tokens")
            && e.contains("[auth] anonymous"),
        "{e}"
    );
    let c = Config::from_toml(
        "my.toml",
        "listen = \"0.0.0.0:8080\"\n[auth]\nanonymous = \"none\"",
    )
    .unwrap();
    assert_eq!(c.auth.anonymous, Anonymous::None);
    assert!(c.auth.anonymous_explicit);
    let c = Config::from_toml(
        "my.toml",
        &format!("listen = \"[::]:8080\"\n[auth]\ntokens = [{{ name = \"ci\", scope = \"admin\", hash = \"{HASH}\" }}]"),
    )
    .unwrap();
    assert_eq!(c.auth.anonymous, Anonymous::Read);

    // The check sees the address in force after the flag and the environment.
    let flag = Overrides {
        listen: Some("0.0.0.0:0".into()),
        ..Overrides::default()
    };
    let e = Config::load(&flag, []).unwrap_err().to_string();
    assert!(e.contains("listening on 0.0.0.0:0"), "{e}");
    let env = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    let e = Config::load(
        &Overrides::default(),
        [env("TESTARENA_LISTEN", "0.0.0.0:80")],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("listening on 0.0.0.0:80"), "{e}");
    let c = Config::load(
        &flag,
        [
            env("TESTARENA_AUTH_ANONYMOUS", "read"),
            env("TESTARENA_AUTH_SESSION_TTL", "1h"),
        ],
    )
    .unwrap();
    assert_eq!(c.auth.anonymous, Anonymous::Read);
    assert_eq!(c.auth.session_ttl, Duration::from_secs(3600));
    let loopback = Overrides {
        listen: Some("127.0.0.1:0".into()),
        ..Overrides::default()
    };
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), "listen = \"0.0.0.0:8080\"\n").unwrap();
    let from_file = Overrides {
        config_file: Some(file.path().to_owned()),
        ..loopback.clone()
    };
    let c = Config::load(&from_file, []).unwrap();
    assert_eq!(
        c.auth.anonymous,
        Anonymous::Write,
        "the flag put it back on loopback"
    );
    let e = Config::load(&loopback, [env("TESTARENA_AUTH_ANONYMOUS", "all")])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("TESTARENA_AUTH_ANONYMOUS") && e.contains("\"read\""),
        "{e}"
    );
}

#[test]
fn retention_defaults_overrides_and_errors() {
    let d = Config::defaults().retention;
    assert_eq!(d.max_age, Some(Duration::from_secs(30 * 86_400)));
    assert_eq!(d.max_queues, Some(10_000));
    assert_eq!(d.checkouts, Checkouts::Delete);
    let c = Config::from_toml(
        "my.toml",
        "[retention]\nmax_age = \"0\"\nmax_queues = 0\ncheckouts = \"keep\"",
    )
    .unwrap();
    assert_eq!(
        c.retention,
        RetentionConfig {
            max_age: None,
            max_queues: None,
            checkouts: Checkouts::Keep
        },
        "0 turns a limit off"
    );
    let c = Config::from_toml("my.toml", "[retention]\nmax_age = \"12h\"").unwrap();
    assert_eq!(c.retention.max_age, Some(Duration::from_secs(12 * 3600)));
    assert_eq!(c.retention.max_queues, Some(10_000), "the default stays");
    let e = err("[retention]\nmax_queue = 5");
    assert!(e.starts_with("my.toml:") && e.contains("max_queue"), "{e}");
    let e = err("[retention]\ncheckouts = \"archive\"");
    assert!(
        e.contains("retention.checkouts") && e.contains("\"keep\""),
        "{e}"
    );
    let e = err("[retention]\nmax_age = \"1w\"");
    assert!(e.contains("1w") && e.contains("d"), "{e}");
    let env = |k: &str, v: &str| [(k.to_owned(), v.to_owned())];
    let c = Config::load(
        &Overrides::default(),
        [
            ("TESTARENA_RETENTION_MAX_AGE".to_owned(), "7d".to_owned()),
            ("TESTARENA_RETENTION_MAX_QUEUES".to_owned(), "50".to_owned()),
            (
                "TESTARENA_RETENTION_CHECKOUTS".to_owned(),
                "keep".to_owned(),
            ),
        ],
    )
    .unwrap();
    assert_eq!(c.retention.max_age, Some(Duration::from_secs(7 * 86_400)));
    assert_eq!(c.retention.max_queues, Some(50));
    assert_eq!(c.retention.checkouts, Checkouts::Keep);
    for (k, v) in [
        ("TESTARENA_RETENTION_MAX_AGE", "soon"),
        ("TESTARENA_RETENTION_MAX_QUEUES", "-1"),
        ("TESTARENA_RETENTION_CHECKOUTS", "trash"),
    ] {
        let e = Config::load(&Overrides::default(), env(k, v))
            .unwrap_err()
            .to_string();
        assert!(e.contains(k), "{e}");
    }
}

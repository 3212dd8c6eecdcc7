//! Scopes, tokens, the anonymous default and the access decision.

use super::*;

#[test]
fn scopes_and_anonymous_values_round_trip() {
    for s in Scope::ALL {
        assert_eq!(s.to_string().parse(), Ok(s));
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, format!("\"{s}\""));
        assert_eq!(serde_json::from_str::<Scope>(&json).unwrap(), s);
    }
    for a in Anonymous::ALL {
        assert_eq!(a.to_string().parse(), Ok(a));
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, format!("\"{a}\""));
        assert_eq!(serde_json::from_str::<Anonymous>(&json).unwrap(), a);
    }
    assert!(Scope::Read < Scope::Write && Scope::Write < Scope::Admin);
    let e = "owner".parse::<Scope>().unwrap_err();
    assert!(e.contains("\"read\", \"write\" or \"admin\""), "{e}");
    let e = "Read".parse::<Anonymous>().unwrap_err();
    assert!(e.contains("\"none\", \"read\" or \"write\""), "{e}");
}

#[test]
fn token_hashes_parse_and_print() {
    let h = TokenHash::of("ta_secret");
    let text = h.to_string();
    assert!(
        text.starts_with("sha256:") && text.len() == 7 + 64,
        "{text}"
    );
    assert_eq!(text.parse::<TokenHash>(), Ok(h));
    assert_eq!(
        text.to_uppercase().replace("SHA256", "sha256").parse(),
        Ok(h)
    );
    assert_eq!(format!("{h:?}"), "TokenHash(sha256:…)");
    // SHA-256 of "abc" (FIPS 180-2).
    assert_eq!(
        TokenHash::of("abc").to_string(),
        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let bad = [
        "",
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "sha256:",
        "sha256:ba7816bf",
        "sha256:zz7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "sha1:a9993e364706816aba3e25717850c26c9cd0d89d",
    ];
    for b in bad {
        let e = b.parse::<TokenHash>().unwrap_err();
        assert!(
            e.contains("64 hex digits") && e.contains("testarena token new NAME"),
            "{b}: {e}"
        );
    }
    let e = "ta_0123secret".parse::<TokenHash>().unwrap_err();
    assert!(e.contains("not its hash") && !e.contains("secret"), "{e}");
}

fn token(name: &str, scope: Scope, secret: &str) -> Token {
    Token {
        name: name.to_owned(),
        scope,
        hash: TokenHash::of(secret),
    }
}

#[test]
fn tokens_verify_by_hash_and_resolve_by_name() {
    let tokens = Tokens::new(vec![
        token("ci", Scope::Write, "ta_ci"),
        token("viewer", Scope::Read, "ta_viewer"),
        token("ops.admin", Scope::Admin, "ta_admin"),
    ])
    .unwrap();
    let who = |name: &str, scope| {
        Some(Identity {
            name: name.into(),
            scope,
        })
    };
    assert_eq!(tokens.verify("ta_ci"), who("ci", Scope::Write));
    assert_eq!(tokens.verify("ta_viewer"), who("viewer", Scope::Read));
    assert_eq!(tokens.verify("ta_admin"), who("ops.admin", Scope::Admin));
    for wrong in ["", "ta_c", "ta_ci ", "TA_CI", "ci"] {
        assert_eq!(tokens.verify(wrong), None, "{wrong:?}");
    }
    assert_eq!(Tokens::default().verify("ta_ci"), None);
    assert_eq!(tokens.by_name("viewer"), who("viewer", Scope::Read));
    assert_eq!(tokens.by_name("nobody"), None);
    assert_eq!(tokens.len(), 3);
    assert!(!tokens.is_empty() && Tokens::default().is_empty());
    let names: Vec<&str> = tokens.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["ci", "viewer", "ops.admin"]);
}

#[test]
fn tokens_reject_bad_and_duplicate_names_and_hashes() {
    let e = Tokens::new(vec![
        token("ci", Scope::Write, "ta_1"),
        token("ci", Scope::Read, "ta_2"),
    ])
    .unwrap_err();
    assert!(e.contains("two tokens are named \"ci\""), "{e}");
    let e = Tokens::new(vec![
        token("a", Scope::Write, "ta_1"),
        token("b", Scope::Read, "ta_1"),
    ])
    .unwrap_err();
    assert!(e.contains("\"a\" and \"b\" have the same hash"), "{e}");
    let e = Tokens::new(vec![token("c i", Scope::Write, "ta_1")]).unwrap_err();
    assert!(
        e.contains("\"c i\"") && e.contains("letters, digits"),
        "{e}"
    );
}

#[test]
fn token_names() {
    for good in ["ci", "CI-2", "ops.admin", "a_b", &"x".repeat(64)] {
        assert_eq!(check_token_name(good), Ok(()), "{good}");
    }
    for bad in ["", "c i", "ci/1", "é", "ci\"", &"x".repeat(65)] {
        assert!(check_token_name(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn a_new_token_verifies_against_the_line_it_prints() {
    let new = NewToken::generate("ci", Scope::Admin).unwrap();
    assert!(new.token.starts_with("ta_") && new.token.len() == 3 + 64);
    assert_ne!(
        new.token,
        NewToken::generate("ci", Scope::Admin).unwrap().token
    );
    let hash = TokenHash::of(&new.token);
    assert_eq!(
        new.entry,
        format!("{{ name = \"ci\", scope = \"admin\", hash = \"{hash}\" }},")
    );
    assert!(!format!("{new:?}").contains(&new.token));
    // The line is TOML: paste it into an array and it parses to a token that verifies.
    #[derive(serde::Deserialize)]
    struct Entry {
        name: String,
        scope: Scope,
        hash: String,
    }
    #[derive(serde::Deserialize)]
    struct File {
        tokens: Vec<Entry>,
    }
    let file: File = toml::from_str(&format!("tokens = [\n{}\n]", new.entry)).unwrap();
    let e = &file.tokens[0];
    let tokens = Tokens::new(vec![Token {
        name: e.name.clone(),
        scope: e.scope,
        hash: e.hash.parse().unwrap(),
    }])
    .unwrap();
    assert_eq!(tokens.verify(&new.token).unwrap().scope, Scope::Admin);
    let e = NewToken::generate("c i", Scope::Write).unwrap_err();
    assert!(e.contains("invalid name \"c i\""), "{e}");
}

#[test]
fn anonymous_defaults_to_write_on_loopback_without_tokens_only() {
    use Anonymous::{Read, Write};
    let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
    let lo4 = addr("127.0.0.1:8080");
    let lo6 = addr("[::1]:8080");
    let mapped = addr("[::ffff:127.0.0.1]:8080");
    let any = addr("0.0.0.0:8080");
    let lan = addr("192.168.1.5:8080");
    for lo in [lo4, lo6, mapped] {
        assert_eq!(
            Anonymous::resolve(lo, false, false, None),
            Ok(Write),
            "{lo}"
        );
        assert_eq!(Anonymous::resolve(lo, false, true, None), Ok(Read), "{lo}");
        // Behind a reverse proxy (published under other names): not only this machine.
        assert!(Anonymous::resolve(lo, true, false, None).is_err(), "{lo}");
        assert_eq!(Anonymous::resolve(lo, true, true, None), Ok(Read), "{lo}");
    }
    for open in [any, lan, addr("[::]:8080")] {
        assert_eq!(
            Anonymous::resolve(open, false, true, None),
            Ok(Read),
            "{open}"
        );
        let e = Anonymous::resolve(open, false, false, None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&open.to_string())
                && e.contains("testarena token new NAME --scope write")
                && e.contains("[auth] tokens")
                && e.contains("[auth] anonymous"),
            "{e}"
        );
    }
    for explicit in Anonymous::ALL {
        for listen in [lo4, any] {
            for has_tokens in [false, true] {
                assert_eq!(
                    Anonymous::resolve(listen, true, has_tokens, Some(explicit)),
                    Ok(explicit),
                    "explicit wins"
                );
            }
        }
    }
}

/// Every anonymous value × identity × needed scope, written out: a change of policy shows here.
#[test]
fn access_decisions() {
    use Anonymous as A;
    use Scope::{Admin, Read, Write};
    // `None` stands for "no token"; the outcome: ok, 401 or 403.
    const OK: u16 = 200;
    #[rustfmt::skip]
    let table: &[(Anonymous, Option<Scope>, Scope, u16)] = &[
        (A::None,  None,        Read,  401), (A::None,  None,        Write, 401), (A::None,  None,        Admin, 401),
        (A::None,  Some(Read),  Read,  OK),  (A::None,  Some(Read),  Write, 403), (A::None,  Some(Read),  Admin, 403),
        (A::None,  Some(Write), Read,  OK),  (A::None,  Some(Write), Write, OK),  (A::None,  Some(Write), Admin, 403),
        (A::None,  Some(Admin), Read,  OK),  (A::None,  Some(Admin), Write, OK),  (A::None,  Some(Admin), Admin, OK),
        (A::Read,  None,        Read,  OK),  (A::Read,  None,        Write, 401), (A::Read,  None,        Admin, 401),
        (A::Read,  Some(Read),  Read,  OK),  (A::Read,  Some(Read),  Write, 403), (A::Read,  Some(Read),  Admin, 403),
        (A::Read,  Some(Write), Read,  OK),  (A::Read,  Some(Write), Write, OK),  (A::Read,  Some(Write), Admin, 403),
        (A::Read,  Some(Admin), Read,  OK),  (A::Read,  Some(Admin), Write, OK),  (A::Read,  Some(Admin), Admin, OK),
        (A::Write, None,        Read,  OK),  (A::Write, None,        Write, OK),  (A::Write, None,        Admin, 401),
        (A::Write, Some(Read),  Read,  OK),  (A::Write, Some(Read),  Write, OK),  (A::Write, Some(Read),  Admin, 403),
        (A::Write, Some(Write), Read,  OK),  (A::Write, Some(Write), Write, OK),  (A::Write, Some(Write), Admin, 403),
        (A::Write, Some(Admin), Read,  OK),  (A::Write, Some(Admin), Write, OK),  (A::Write, Some(Admin), Admin, OK),
    ];
    assert_eq!(table.len(), 3 * 4 * 3, "every combination once");
    for &(anonymous, scope, needed, expected) in table {
        let identity = scope.map(|scope| Identity {
            name: "t".into(),
            scope,
        });
        let got = access(anonymous, identity.as_ref(), needed);
        let status = got.map_or_else(Denied::http_status, |()| OK);
        assert_eq!(
            status, expected,
            "anonymous {anonymous}, token {scope:?}, needs {needed}"
        );
        match got {
            Err(Denied::Unauthenticated { needed: n }) => assert_eq!(n, needed),
            Err(Denied::Forbidden { needed: n, has }) => {
                assert_eq!((n, Some(has)), (needed, scope));
            }
            Ok(()) => {}
        }
    }
    let e = access(A::Read, None, Write).unwrap_err().to_string();
    assert!(e.contains("Authorization: Bearer"), "{e}");
    let who = Identity {
        name: "viewer".into(),
        scope: Read,
    };
    let e = access(A::None, Some(&who), Admin).unwrap_err().to_string();
    assert!(e.contains("--scope admin") && e.contains("has read"), "{e}");
}

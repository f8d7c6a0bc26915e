//! `agigit wallet` through the binary, against a real Cashu mint (cdk-mintd with its fake
//! Lightning backend, started on loopback): two users top up, send and receive ecash; a token is
//! spent once; the wallet file is the user's alone; errors say what to do.

#![allow(clippy::expect_used, clippy::panic, reason = "test fixtures")]

mod support;
use support::{agigit, json, ok};

#[path = "../../agigit-market-cashu/tests/support/mint.rs"]
mod mint;

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[test]
fn two_users_pay_each_other_through_the_mint() -> TestResult {
    let Some(mint) = mint::start_mint("cli-wallet") else {
        return Ok(());
    };
    let root = mint.dir.join("users");
    let (alice, bob) = (root.join("alice"), root.join("bob"));
    for home in [&alice, &bob] {
        std::fs::create_dir_all(home)?;
        ok(&agigit(home, home, &["key", "generate"]));
    }
    // Alice names the mint in her config; Bob passes it on the command line.
    std::fs::write(
        alice.join("config.toml"),
        format!("[wallet]\nmint = \"{}\"\n", mint.url),
    )?;
    let topped = json(&agigit(
        &alice,
        &alice,
        &["wallet", "top-up", "500", "--json"],
    ));
    assert_eq!(topped["minted"], 500);
    assert_eq!(topped["balance"], 500);

    let sent = json(&agigit(
        &alice,
        &alice,
        &["wallet", "send", "120", "--json"],
    ));
    let token = sent["token"].as_str().expect("a token").to_owned();
    assert!(token.starts_with("cashuB"), "{token}");
    assert_eq!(sent["balance"], 380);

    let got = json(&agigit(
        &bob,
        &bob,
        &["wallet", "receive", &token, "--mint", &mint.url, "--json"],
    ));
    assert_eq!(got["received"], 120);
    let balance = json(&agigit(
        &bob,
        &bob,
        &["wallet", "balance", "--mint", &mint.url, "--json"],
    ));
    assert_eq!(balance["balance"], 120);

    // A token is spent once: Alice cannot take back what Bob received.
    let again = agigit(&alice, &alice, &["wallet", "receive", &token, "--json"]);
    assert!(!again.status.success());
    let failure: serde_json::Value = serde_json::from_slice(&again.stdout)?;
    assert_eq!(failure["kind"], "invalid", "{failure}");
    assert!(
        failure["error"].as_str().unwrap_or("").contains("spent"),
        "{failure}"
    );

    // More than the wallet holds: refused, nothing spent.
    let broke = agigit(&bob, &bob, &["wallet", "send", "1000", "--mint", &mint.url]);
    assert!(!broke.status.success());
    assert!(String::from_utf8_lossy(&broke.stderr).contains("holds 120"));

    // Without a mint: the message says where to name one.
    let lost = agigit(&bob, &bob, &["wallet", "balance"]);
    assert_eq!(lost.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&lost.stderr).contains("[wallet] mint"));

    // The wallet's directory and file are the user's alone, like the key.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::fs::metadata(alice.join("wallet"))?
            .permissions()
            .mode();
        let file = std::fs::metadata(alice.join("wallet/wallet.redb"))?
            .permissions()
            .mode();
        assert_eq!((dir & 0o777, file & 0o777), (0o700, 0o600));
    }
    Ok(())
}

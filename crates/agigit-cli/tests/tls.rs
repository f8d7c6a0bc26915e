//! TLS through the binaries: agigit-relay processes serving `wss://` and `https://` with
//! certificates from a CA the test makes (rcgen); a push and a clone over TLS with that CA
//! trusted through `SSL_CERT_FILE` and through the `[tls] ca_file` setting; a clone trusting
//! another CA refused; a relay whose
//! certificate is for another name refused — each with a message that says why.

#![allow(clippy::expect_used, clippy::panic, reason = "test fixtures")]

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

type TestResult = Result<(), Box<dyn std::error::Error>>;

mod support;
use support::{Relays, agigit_env, json, ok};

/// A CA of its own.
fn ca(name: &str) -> Result<CertifiedIssuer<'static, KeyPair>, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate()?)
}

/// A server certificate for `names`, signed by `ca`, and its key: written as PEM files in `dir`
/// with a relay configuration naming them; returns the configuration's path.
fn server_config(
    dir: &Path,
    ca: &CertifiedIssuer<'static, KeyPair>,
    names: &[&str],
) -> Result<PathBuf, Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    let params = CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())?;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, ca)?;
    let (cert_file, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_file, cert.pem() + &ca.pem())?;
    std::fs::write(&key_file, key.serialize_pem())?;
    let config = dir.join("relay.toml");
    std::fs::write(
        &config,
        format!(
            "[tls]\ncert_file = {:?}\nkey_file = {:?}\n",
            cert_file.display().to_string(),
            key_file.display().to_string()
        ),
    )?;
    Ok(config)
}

#[test]
fn push_and_clone_over_tls_and_refuse_what_does_not_check_out() -> TestResult {
    let root = std::env::temp_dir().join(format!("agigit-cli-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let certs = root.with_extension("certs");
    let (good, wrong) = (ca("agigit test CA")?, ca("another CA")?);
    let good_pem = certs.join("ca.pem");
    let wrong_pem = certs.join("wrong-ca.pem");
    std::fs::create_dir_all(&certs)?;
    std::fs::write(&good_pem, good.pem())?;
    std::fs::write(&wrong_pem, wrong.pem())?;
    // Relays 0 and 1 have certificates for 127.0.0.1; relay 2's is for another name.
    let configs: Vec<PathBuf> = vec![
        server_config(&certs.join("r0"), &good, &["localhost", "127.0.0.1"])?,
        server_config(&certs.join("r1"), &good, &["localhost", "127.0.0.1"])?,
        server_config(&certs.join("r2"), &good, &["relay.example"])?,
    ];
    let relays = Relays::start(&root, 3, |i| Some(configs[i].clone()))?;
    let urls: Vec<String> = relays
        .ports()
        .iter()
        .map(|p| format!("wss://127.0.0.1:{p}"))
        .collect();
    let trust: [(&str, &Path); 1] = [("SSL_CERT_FILE", &good_pem)];

    let home = root.join("home");
    ok(&agigit_env(&home, &root, &["key", "generate"], &trust));
    ok(&agigit_env(&home, &root, &["init", "model"], &trust));
    let model = root.join("model");
    for u in &urls[..2] {
        ok(&agigit_env(&home, &model, &["relay", "add", u], &trust));
    }
    // A certificate for another name: refused, and said so.
    let out = agigit_env(&home, &model, &["relay", "add", &urls[2]], &trust);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("for another name"), "{err}");
    eprintln!("a certificate for another name: {err}");

    let weights: Vec<u8> = (0..2_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13).to_le_bytes()[0])
        .collect();
    std::fs::write(model.join("weights.bin"), &weights)?;
    ok(&agigit_env(
        &home,
        &model,
        &["commit", "-m", "over TLS"],
        &trust,
    ));
    let pushed = json(&agigit_env(&home, &model, &["push", "--json"], &trust));
    let coordinate = pushed["repository"].as_str().ok_or("coordinate")?;

    let clone_args = |dir: &str| {
        let mut args = vec!["clone".to_owned(), coordinate.to_owned(), dir.to_owned()];
        for u in &urls[..2] {
            args.extend(["--relay".to_owned(), u.clone()]);
        }
        args
    };
    // The reader trusts the CA through its configuration (`[tls] ca_file`) instead.
    let reader = root.join("reader");
    std::fs::create_dir_all(&reader)?;
    std::fs::write(
        reader.join("config.toml"),
        format!("[tls]\nca_file = {:?}\n", good_pem.display().to_string()),
    )?;
    let args = clone_args("copy");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&agigit_env(&reader, &root, &args, &[]));
    assert!(std::fs::read(root.join("copy/weights.bin"))? == weights);

    // Trusting another CA: nothing is cloned, and the message says what to do.
    let args = clone_args("refused");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let stranger = root.join("stranger");
    let out = agigit_env(&stranger, &root, &args, &[("SSL_CERT_FILE", &wrong_pem)]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not trust") && err.contains("SSL_CERT_FILE"),
        "{err}"
    );
    eprintln!("another CA trusted: {err}");
    assert!(!root.join("refused").exists());
    drop(relays);
    let _ = std::fs::remove_dir_all(&certs);
    Ok(())
}

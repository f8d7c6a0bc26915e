//! The configuration files read, written and merged.

#![allow(clippy::unwrap_used, reason = "tests")]

use super::*;

/// A scratch directory (removed when dropped) and its `config.toml`.
fn temp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("agigit-config-")
        .tempdir()
        .unwrap();
    let path = dir.path().join("config.toml");
    (dir, path)
}

#[test]
fn codec_settings_make_a_codec_or_say_what_is_wrong() {
    let c = |codec: &str| CodecConfig {
        codec: Some(codec.into()),
        ..CodecConfig::default()
    };
    assert_eq!(
        CodecConfig::default().build(false).unwrap().kind(),
        agigit_delta::CodecKind::Lossless
    );
    assert_eq!(
        c("signscale").build(false).unwrap().kind(),
        agigit_delta::CodecKind::SignScale
    );
    #[cfg(feature = "lowrank")]
    assert_eq!(
        c("lowrank").build(false).unwrap().kind(),
        agigit_delta::CodecKind::LowRank
    );
    let refused = [
        c("zip"),
        CodecConfig {
            rank: Some(4),
            ..c("lossless")
        },
        CodecConfig {
            rank: Some(4),
            energy: Some(0.9),
            ..c("lowrank")
        },
        CodecConfig {
            energy: Some(1.5),
            ..c("lowrank")
        },
        CodecConfig {
            max_error: Some(-1.0),
            ..c("lowrank")
        },
        CodecConfig {
            factor_storage: Some("f8".into()),
            ..c("lowrank")
        },
    ];
    for config in refused {
        assert!(
            matches!(config.build(false), Err(ConfigError::Codec { .. })),
            "{config:?}"
        );
    }
    #[cfg(not(feature = "cuda"))]
    assert!(c("lowrank").build(true).is_err(), "no CUDA in this build");
    // Flags win field by field.
    let merged = c("lowrank").overlay(&CodecConfig {
        rank: Some(8),
        ..CodecConfig::default()
    });
    assert_eq!((merged.name(), merged.rank), ("lowrank", Some(8)));
}

#[test]
fn round_trips_and_missing_is_default() {
    let (_dir, path) = temp();
    assert_eq!(RepoConfig::load(&path).unwrap(), RepoConfig::default());
    let config = RepoConfig {
        id: Some("m".into()),
        remote: None,
        relays: vec![RelayEntry {
            key: None,
            url: "ws://127.0.0.1:1".into(),
            fetch: true,
            push: false,
        }],
        blob_servers: vec![BlobServerEntry {
            url: "https://blobs.example".into(),
            fetch: true,
            push: false,
        }],
        push: Some(PushConfig {
            k: 2,
            ..PushConfig::default()
        }),
        commit: Some(CodecConfig {
            codec: Some("lowrank".into()),
            max_error: Some(0.05),
            ..CodecConfig::default()
        }),
        announce: Some(AnnounceConfig {
            name: Some("M".into()),
            topics: vec!["llm".into()],
            ..AnnounceConfig::default()
        }),
    };
    config.save(&path).unwrap();
    assert_eq!(RepoConfig::load(&path).unwrap(), config);
    // Only the file itself is left: the temporary was renamed over it.
    let dir = path.parent().unwrap();
    assert_eq!(std::fs::read_dir(dir).unwrap().count(), 1);
}

#[test]
fn unknown_keys_and_bad_codes_are_typed_errors() {
    let (_dir, path) = temp();
    std::fs::write(&path, "id = \"m\"\nsegment = 3\n").unwrap();
    let err = RepoConfig::load(&path).unwrap_err();
    assert!(matches!(err, ConfigError::Parse { .. }), "{err}");
    assert!(err.to_string().contains("segment"), "{err}");
    let bad = PushConfig {
        k: 5,
        n: 3,
        ..PushConfig::default()
    };
    assert!(matches!(
        bad.code(),
        Err(ConfigError::Code { k: 5, n: 3, .. })
    ));
    assert!(PushConfig::default().code().is_ok());
}

#[test]
fn the_repository_wins_over_the_user_and_the_user_over_the_defaults() {
    let relay = |url: &str| RelayEntry {
        key: None,
        url: url.into(),
        fetch: true,
        push: true,
    };
    let user = UserConfig {
        relays: vec![relay("ws://user")],
        push: Some(PushConfig {
            n: 8,
            ..PushConfig::default()
        }),
        init: None,
        tls: None,
        wallet: None,
    };
    assert_eq!(user.initial_branch(), crate::DEFAULT_BRANCH);
    let (relays, push) = effective(&RepoConfig::default(), &user);
    assert_eq!((relays[0].url.as_str(), push.n), ("ws://user", 8));
    let repo = RepoConfig {
        relays: vec![relay("ws://repo")],
        push: Some(PushConfig::default()),
        ..RepoConfig::default()
    };
    let (relays, push) = effective(&repo, &user);
    assert_eq!(
        (relays[0].url.as_str(), push),
        ("ws://repo", PushConfig::default())
    );
    let (relays, push) = effective(&RepoConfig::default(), &UserConfig::default());
    assert!(relays.is_empty());
    assert_eq!(push.segment_size, defaults::SEGMENT_SIZE);
}

//! The deployment recipes in `deploy/`: credentials encrypted with `systemd-creds` reach
//! sluice's `file:` secrets as the encrypted-credentials drop-in describes.

use std::path::Path;
use std::process::Command;

/// What `deploy/credentials-encrypted.conf` loads: `(name, encrypted file)`.
fn encrypted_credentials() -> Vec<(String, String)> {
    let dropin = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/credentials-encrypted.conf"
    ))
    .unwrap();
    dropin
        .lines()
        .filter_map(|l| l.strip_prefix("LoadCredentialEncrypted="))
        .map(|v| {
            let (name, path) = v.split_once(':').expect("NAME:PATH");
            (name.to_string(), path.to_string())
        })
        .collect()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?}:\n{text}");
    text
}

#[test]
fn systemd_encrypted_credentials_feed_file_secrets() {
    if Command::new("systemd-creds")
        .arg("--version")
        .output()
        .is_err()
    {
        // The README's setup command installs systemd; say so rather than pass silently.
        panic!("systemd-creds is missing: run the README's setup command");
    }
    let creds = encrypted_credentials();
    let names: Vec<&str> = creds.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["openai", "demo-key"],
        "the drop-in matches the unit's credentials"
    );
    // The unit's own LoadCredential= lines name the same credentials, so each drop-in line
    // replaces one of them.
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/sluice.service"
    ))
    .unwrap();
    for n in &names {
        assert!(unit.contains(&format!("LoadCredential={n}:")), "{n}");
    }

    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("credentials");
    let plain = dir.path().join("run-credentials");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::create_dir_all(&plain).unwrap();
    let values = [
        ("openai", "sk-test-fake-provider-key-0000"),
        ("demo-key", "sk-test-fake-gateway-key-1111"),
    ];
    for (name, value) in values {
        let enc = store.join(format!("{name}.cred"));
        // As deploy/README.md does it: the secret comes on standard input. `--with-key=host`
        // uses (and creates, on first use) the host key; TPM2-less test machines have no other.
        let mut child = Command::new("systemd-creds")
            .args(["encrypt", "--with-key=host", &format!("--name={name}"), "-"])
            .arg(&enc)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(value.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "encrypt {name}");
        let sealed = std::fs::read(&enc).unwrap();
        assert!(
            !String::from_utf8_lossy(&sealed).contains(value),
            "the stored credential is not plain text"
        );
        // What systemd does when the service starts: decrypt into $CREDENTIALS_DIRECTORY.
        run(Command::new("systemd-creds")
            .args(["decrypt", &format!("--name={name}")])
            .arg(&enc)
            .arg(plain.join(name)));
    }
    let cfg = dir.path().join("sluice.yaml");
    std::fs::write(
        &cfg,
        r#"listen: 127.0.0.1:8080
keys:
  - { name: demo, key: "file:${CREDENTIALS_DIRECTORY}/demo-key" }
providers:
  openai: { kind: openai, api_key: "file:${CREDENTIALS_DIRECTORY}/openai" }
models:
  gpt-4o-mini:
    - { provider: openai }
"#,
    )
    .unwrap();
    let out = run(Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["check", "--resolve-secrets", "-c"])
        .arg(&cfg)
        .env("CREDENTIALS_DIRECTORY", &plain));
    assert!(out.contains("OK (1 keys, 1 providers, 1 models)"), "{out}");
    for (_, v) in values {
        assert!(!out.contains(v));
    }
    // Without the decrypted credentials the check names the key, never a value.
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["check", "--resolve-secrets", "-c"])
        .arg(&cfg)
        .env("CREDENTIALS_DIRECTORY", Path::new("/nonexistent"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("keys[0].key"));
}

/// `deploy/release.sh` (without the advisory check, which needs the network): an audited
/// binary whose embedded dependency list names what it was built from, and a CycloneDX SBOM
/// of the same tree.
#[test]
fn release_build_embeds_its_dependencies_and_ships_an_sbom() {
    for tool in [
        "cargo-auditable",
        "cargo-cyclonedx",
        "cargo-deny",
        "objcopy",
        "python3",
    ] {
        assert!(
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .unwrap()
                .status
                .success(),
            "{tool} is missing: run the README's setup command"
        );
    }
    let root = env!("CARGO_MANIFEST_DIR");
    let out = tempfile::tempdir().unwrap();
    // The environment a user's shell gives the script, not the one `cargo test` gives this
    // test: with that one the nested cargo would not find the setup's build fresh.
    let mut release = Command::new(format!("{root}/deploy/release.sh"));
    release.env_clear();
    for name in ["PATH", "HOME", "CARGO_HOME", "RUSTUP_HOME", "TMPDIR"] {
        if let Some(v) = std::env::var_os(name) {
            release.env(name, v);
        }
    }
    let text = run(release
        .arg(out.path())
        .env("SLUICE_RELEASE_SKIP_ADVISORIES", "1"));
    assert!(text.contains("advisories NOT checked"), "{text}");
    let bin = out.path().join("sluice");
    let version = run(Command::new(&bin).arg("--version"));
    assert!(version.starts_with("sluice "), "{version}");

    // The SBOM: CycloneDX, naming sluice and what it is made of, at the locked versions.
    let sbom: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("sluice.cdx.json")).unwrap())
            .unwrap();
    assert_eq!(sbom["bomFormat"], "CycloneDX");
    assert_eq!(sbom["metadata"]["component"]["name"], "sluice");
    let lock = std::fs::read_to_string(format!("{root}/Cargo.lock")).unwrap();
    let locked = |name: &str| {
        let at = lock
            .find(&format!("name = \"{name}\"\nversion = \""))
            .unwrap();
        lock[at..]
            .lines()
            .nth(1)
            .unwrap()
            .split('"')
            .nth(1)
            .unwrap()
            .to_string()
    };
    let components = sbom["components"].as_array().unwrap();
    for name in ["pingora-core", "tokio", "rustls"] {
        let c = components
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("{name} not in the SBOM"));
        assert_eq!(c["version"], locked(name), "{name}");
    }

    // The binary's own dependency list (cargo auditable's `.dep-v0` section: zlib-compressed
    // JSON), as `cargo audit bin` reads it.
    let section = out.path().join("deps.z");
    run(Command::new("objcopy")
        .arg(format!("--dump-section=.dep-v0={}", section.display()))
        .arg(&bin)
        .arg(out.path().join("scratch")));
    let deps = run(Command::new("python3")
        .args([
            "-c",
            "import sys, zlib; print(zlib.decompress(open(sys.argv[1], 'rb').read()).decode())",
        ])
        .arg(&section));
    let deps: serde_json::Value = serde_json::from_str(deps.trim()).unwrap();
    let packages = deps["packages"].as_array().unwrap();
    for name in ["sluice", "pingora-core", "tokio"] {
        assert!(
            packages
                .iter()
                .any(|p| p["name"] == name && p["version"] == locked(name)),
            "{name} missing from the embedded list"
        );
    }
    let sums = std::fs::read_to_string(out.path().join("SHA256SUMS")).unwrap();
    assert!(
        sums.contains(" sluice\n") && sums.contains(" sluice.cdx.json\n"),
        "{sums}"
    );
    assert!(!Path::new(&format!("{root}/sluice.cdx.json")).exists());
}

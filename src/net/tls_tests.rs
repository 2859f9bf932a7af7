//! Tests of the TLS identity, pins and handshakes.
use super::*;

/// The message of a refused identity.
fn refusal(dir: &Path) -> String {
    match ServerIdentity::load_or_create(dir) {
        Err(Error::Secret(message)) => message,
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn servers_starting_together_in_one_folder_all_get_the_one_identity() {
    for _ in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let racers: Vec<_> = (0..4)
            .map(|_| {
                let dir = dir.path().to_path_buf();
                std::thread::spawn(move || ServerIdentity::load_or_create(&dir))
            })
            .collect();
        let made: Vec<_> = racers.into_iter().map(|t| t.join().unwrap()).collect();
        let prints: Vec<_> = made
            .iter()
            .map(|m| m.as_ref().unwrap().fingerprint)
            .collect();
        assert!(prints.iter().all(|p| *p == prints[0]), "{prints:?}");
        assert_eq!(
            made.iter().filter(|m| m.as_ref().unwrap().created).count(),
            1
        );
    }
}

#[test]
fn an_identity_made_once_loads_again_with_its_certificate_file_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let made = ServerIdentity::load_or_create(dir.path()).unwrap();
    assert!(made.created);
    let loaded = ServerIdentity::load_or_create(dir.path()).unwrap();
    assert!(!loaded.created);
    assert_eq!(loaded.fingerprint, made.fingerprint);
    let cert = dir.path().join(CERT_FILE);
    assert_eq!(fingerprint_of_file(&cert), Some(made.fingerprint));
    assert_eq!(fingerprint_of_file(&dir.path().join("none.pem")), None);
}

#[test]
fn a_lone_key_or_certificate_is_set_aside_and_both_are_made_anew() {
    let dir = tempfile::tempdir().unwrap();
    let first = ServerIdentity::load_or_create(dir.path()).unwrap();
    assert_eq!(first.set_aside, None);
    for missing in [CERT_FILE, KEY_FILE] {
        fs::remove_file(dir.path().join(missing)).unwrap();
        let made = ServerIdentity::load_or_create(dir.path()).unwrap();
        let lone = if missing == CERT_FILE {
            KEY_FILE
        } else {
            CERT_FILE
        };
        let old = dir.path().join(format!("{lone}.old"));
        assert!(made.created);
        assert_eq!(made.set_aside.as_deref(), Some(old.as_path()));
        assert!(old.exists());
        assert_ne!(made.fingerprint, first.fingerprint);
        let again = ServerIdentity::load_or_create(dir.path()).unwrap();
        assert_eq!(
            (again.fingerprint, again.created),
            (made.fingerprint, false)
        );
    }
}

#[test]
fn a_file_without_its_block_or_with_bad_base64_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    ServerIdentity::load_or_create(dir.path()).unwrap();
    let key = dir.path().join(KEY_FILE);
    let cert = dir.path().join(CERT_FILE);
    let good_cert = fs::read(&cert).unwrap();
    // A key file that holds a certificate holds no key.
    fs::write(&key, &good_cert).unwrap();
    let said = refusal(dir.path());
    assert!(
        said.ends_with("server-key.pem holds no PRIVATE KEY block"),
        "{said}"
    );
    fs::write(
        &cert,
        "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let said = refusal(dir.path());
    assert!(said.contains("server-cert.pem: bad PEM"), "{said}");
    assert_eq!(fingerprint_of_file(&cert), None);
}

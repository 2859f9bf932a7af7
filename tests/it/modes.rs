//! The permission bits an upload asks for, within what the server allows,
//! and the digest a read-only upload keeps.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::support::*;
use serde_json::json;

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Uploads `data` as `name` asking for `mode`, with its digest.
fn put_with_mode(raw: &mut Raw, name: &str, data: &[u8], mode: u32) {
    let request = json!({"cmd":"put","filename":name,"filesize":data.len(),
                         "digest":"blake3","mode":mode});
    raw.send_json(&request);
    raw.send(data);
    raw.send_json(&json!({"blake3": blake3::hash(data).to_hex().to_string()}));
    let reply = raw.reply().unwrap();
    assert_eq!(reply["status"], "ok", "{reply}");
}

#[test]
fn an_upload_never_gets_write_bits_for_others_nor_special_bits() {
    for flags in [&[][..], &["--shared-files"][..]] {
        let sb = Sandbox::new();
        let server = sb.start_server(flags);
        let mut raw = Raw::login(server.addr, SECRET.as_bytes());
        put_with_mode(&mut raw, "open", b"x", 0o777);
        put_with_mode(&mut raw, "special", b"x", 0o7777);
        put_with_mode(&mut raw, "shared", b"x", 0o666);
        assert_eq!(mode_of(&sb.root().join("open")), 0o755, "{flags:?}");
        assert_eq!(mode_of(&sb.root().join("special")), 0o755, "{flags:?}");
        assert_eq!(mode_of(&sb.root().join("shared")), 0o644, "{flags:?}");
    }
}

#[test]
fn a_read_only_upload_keeps_its_digest() {
    let sb = Sandbox::new();
    let server = sb.start_server(&[]);
    let mut raw = Raw::login(server.addr, SECRET.as_bytes());
    let data = pattern(10_000, 7);
    put_with_mode(&mut raw, "ro", &data, 0o400);
    let stored = sb.root().join("ro");
    assert_eq!(mode_of(&stored), 0o400);
    let mut value = [0u8; 256];
    let n = rustix::fs::getxattr(&stored, "user.ftp.blake3", &mut value[..])
        .expect("the digest is kept in the file's attribute");
    let kept = String::from_utf8_lossy(&value[..n]).into_owned();
    assert!(
        kept.starts_with(&blake3::hash(&data).to_hex().to_string()),
        "{kept}"
    );
}

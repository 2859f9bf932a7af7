//! Several servers on one S3 store (one real Garage that the tests share,
//! each test under a prefix of its own): files put through one are served
//! by another, uploads resume on any server, parts are verified before
//! the object appears, and quotas see what every server stored.

use std::time::Duration;

use crate::support::garage::{Garage, BUCKET};
use crate::support::*;

/// A server whose files are in the bucket under `prefix`.
pub(crate) fn s3_server(
    sb: &Sandbox,
    garage: &Garage,
    prefix: &str,
    extra: &[&str],
) -> ServerProcess {
    let root = format!("s3://{BUCKET}/{prefix}");
    ServerProcess::launch(sb, &[], &root, extra, Some(SECRET), &garage.env())
        .unwrap_or_else(|log| panic!("the server did not start: {log}"))
}

/// The upload record of `name` (in the home of a single-secret server).
fn record(garage: &Garage, prefix: &str, name: &str) -> Option<serde_json::Value> {
    let key = format!("{prefix}/.ftp-partial/{name}");
    let bytes = garage.client().get_small(&key).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Waits until the upload of `name` has stored at least one part.
pub(crate) fn wait_for_a_part(garage: &Garage, prefix: &str, name: &str) -> serde_json::Value {
    let mut found = None;
    let stored = wait_until(Duration::from_secs(30), || {
        found = record(garage, prefix, name)
            .filter(|r| r["parts"].as_array().is_some_and(|p| !p.is_empty()));
        found.is_some()
    });
    assert!(stored, "no part of {name} was stored");
    found.unwrap()
}

/// Gets `name` through the server at `addr` and returns its bytes.
pub(crate) fn fetch(sb: &Sandbox, addr: &str, name: &str) -> Vec<u8> {
    let local = format!("fetched-{name}");
    let out = ClientRun::to(sb, addr, &["get", name, &local]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::read(sb.work().join(local)).unwrap()
}

fn object_exists(garage: &Garage, key: &str) -> bool {
    garage.client().head(key).is_ok()
}

/// A slow put of `name`, for breaking off.
pub(crate) fn slow_put(sb: &Sandbox, addr: &str, name: &str) -> std::process::Child {
    let mut run = ClientRun::to(sb, addr, &["--limit-rate", "4MiB", "put", name]);
    run.cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    run.cmd.spawn().unwrap()
}

#[test]
fn files_put_through_one_server_are_listed_and_fetched_through_another() {
    let garage = Garage::shared();
    let sb = Sandbox::new();
    let a = s3_server(&sb, garage, "shared", &[]);
    let b = s3_server(&sb, garage, "shared", &[]);
    // Not a whole number of parts, nor of BLAKE3 chunks.
    let big = pattern((20 << 20) + 12345, 1);
    sb.local_file("big.bin", &big);
    sb.local_file("small.txt", b"small and whole");
    for name in ["big.bin", "small.txt"] {
        let out = ClientRun::new(&sb, &a, &["put", name]).run();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = ClientRun::new(&sb, &b, &["ls"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    let listing = stdout(&out);
    assert!(
        listing.contains("20983865") && listing.contains("big.bin"),
        "{listing}"
    );
    assert!(listing.contains("small.txt"), "{listing}");
    assert_eq!(fetch(&sb, &b.addr_string(), "big.bin"), big);
    // The large file's digest was recorded beside it, so B did not hash it.
    assert!(object_exists(
        garage,
        "shared/.ftp-partial/.ftp-partial/big.bin"
    ));

    // Folders, seen from either server.
    let out = ClientRun::new(&sb, &b, &[])
        .run_with_input("mkdir docs\ncd docs\nput small.txt\npwd\nls\n");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_stdout_has(&out, "/docs");
    assert!(object_exists(garage, "shared/docs/small.txt"));
    let out = ClientRun::new(&sb, &a, &[])
        .run_with_input("rm docs\ncd docs\nrm small.txt\ncd /\nrm docs\nls\n");
    assert_stderr_has(&out, "folder docs is not empty");
    assert!(!stdout(&out).contains("docs/"), "{}", stdout(&out));
    assert!(!object_exists(garage, "shared/docs/small.txt"));
    assert!(!object_exists(garage, "shared/docs/"));
}

#[test]
fn a_put_killed_on_one_server_resumes_on_another() {
    let garage = Garage::shared();
    let sb = Sandbox::new();
    let mut a = s3_server(&sb, garage, "resume", &[]);
    let b = s3_server(&sb, garage, "resume", &[]);
    let data = pattern(24 << 20, 2);
    sb.local_file("big.bin", &data);
    let client = slow_put(&sb, &a.addr_string(), "big.bin");
    wait_for_a_part(garage, "resume", "big.bin");
    a.kill();
    let out = wait_output(client, CLIENT_LIMIT);
    assert!(!out.status.success());
    // Until A's record is older than the live window, B calls it busy.
    std::thread::sleep(Duration::from_secs(7));
    let out = ClientRun::new(&sb, &b, &["put", "big.bin"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("resumed at byte 8388608")
            || stdout(&out).contains("resumed at byte 16777216"),
        "{}",
        stdout(&out)
    );
    assert_eq!(fetch(&sb, &b.addr_string(), "big.bin"), data);
    assert!(
        record(garage, "resume", "big.bin").is_none(),
        "the record goes"
    );
}

#[test]
fn a_part_replaced_behind_the_servers_back_is_caught_before_complete() {
    let garage = Garage::shared();
    let sb = Sandbox::new();
    let a = s3_server(&sb, garage, "corrupt", &[]);
    let data = pattern(24 << 20, 3);
    sb.local_file("big.bin", &data);
    let client = slow_put(&sb, &a.addr_string(), "big.bin");
    let state = wait_for_a_part(garage, "corrupt", "big.bin");
    let upload_id = state["upload_id"].as_str().unwrap();
    garage
        .client()
        .upload_part("corrupt/big.bin", upload_id, 1, &vec![0u8; 8 << 20])
        .unwrap();
    // The server refuses to complete; the client sends the file again.
    let out = wait_output(client, CLIENT_LIMIT);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_stdout_has(&out, "did not match, so it was sent again");
    let refused = [
        ("cmd", "put"),
        ("path", "/big.bin"),
        ("code", "digest_mismatch"),
    ];
    assert!(!a.events_with(&refused).is_empty(), "{}", a.log_text());
    assert_eq!(fetch(&sb, &a.addr_string(), "big.bin"), data);
}

#[test]
fn two_servers_racing_on_one_name_store_one_whole_file() {
    let garage = Garage::shared();
    let sb = Sandbox::new();
    let a = s3_server(&sb, garage, "race", &[]);
    let b = s3_server(&sb, garage, "race", &[]);
    let (one, two) = (pattern(20 << 20, 4), pattern(20 << 20, 5));
    let dir_one = sb.work().join("one");
    let dir_two = sb.work().join("two");
    std::fs::create_dir_all(&dir_one).unwrap();
    std::fs::create_dir_all(&dir_two).unwrap();
    std::fs::write(dir_one.join("f.bin"), &one).unwrap();
    std::fs::write(dir_two.join("f.bin"), &two).unwrap();
    let mut first = ClientRun::new(&sb, &a, &["--limit-rate", "8MiB", "put", "f.bin"]);
    first.cmd.current_dir(&dir_one);
    let mut second = ClientRun::new(&sb, &b, &["--limit-rate", "8MiB", "put", "f.bin"]);
    second.cmd.current_dir(&dir_two);
    let first = std::thread::spawn(move || first.run());
    std::thread::sleep(Duration::from_millis(300));
    let second = second.run();
    let first = first.join().unwrap();
    let won = [&first, &second]
        .iter()
        .filter(|o| o.status.success())
        .count();
    assert!(won >= 1, "{}\n{}", stderr(&first), stderr(&second));
    if won == 1 {
        assert!(
            stderr(&second).contains("busy") || stderr(&first).contains("busy"),
            "{}\n{}",
            stderr(&first),
            stderr(&second)
        );
    }
    let stored = fetch(&sb, &a.addr_string(), "f.bin");
    assert!(stored == one || stored == two, "a mix was stored");
}

#[test]
fn a_quota_counts_what_every_server_stored() {
    let garage = Garage::shared();
    let sb = Sandbox::new();
    let users = alice_with_30_mib(&sb);
    let launch = || {
        ServerProcess::launch(
            &sb,
            &[],
            &format!("s3://{BUCKET}/quota"),
            &["--users", &users],
            None,
            &garage.env(),
        )
        .unwrap_or_else(|log| panic!("{log}"))
    };
    let (a, b) = (launch(), launch());
    sb.local_file("one.bin", &pattern(20 << 20, 6));
    sb.local_file("two.bin", &pattern(20 << 20, 7));
    let out = ClientRun::new(&sb, &a, &["put", "one.bin"])
        .env("FTP_SECRET", "alice secret")
        .run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(object_exists(garage, "quota/alice/one.bin"));
    let out = ClientRun::new(&sb, &b, &["put", "two.bin"])
        .env("FTP_SECRET", "alice secret")
        .run();
    assert!(!out.status.success());
    assert_stderr_has(&out, "server refused (quota exceeded)");
    let out = ClientRun::new(&sb, &b, &["quota"])
        .env("FTP_SECRET", "alice secret")
        .run();
    // The file and its kept delta signature (about 11 KiB).
    assert_stdout_has(&out, "used 20.01 MiB of quota 30.00 MiB");
}

#[test]
fn the_parts_of_an_abandoned_upload_count_against_the_quota_until_removed() {
    let garage = Garage::shared();
    let sb = Sandbox::new();
    let users = alice_with_30_mib(&sb);
    let root = format!("s3://{BUCKET}/parts");
    let server = ServerProcess::launch(&sb, &[], &root, &["--users", &users], None, &garage.env())
        .unwrap_or_else(|log| panic!("{log}"));
    let put = |name: &str| serde_json::json!({"cmd":"put","filename":name,"filesize":20 << 20,"ack":true});
    // Two 8 MiB parts stored, then the client goes.
    let mut raw = Raw::login(server.addr, b"alice secret");
    raw.send_json(&put("big.bin"));
    assert_eq!(raw.reply().unwrap()["offset"], 0);
    raw.send(&pattern(17 << 20, 11));
    drop(raw);
    let abandoned = wait_until(Duration::from_secs(30), || {
        record(garage, "parts", "alice/big.bin").is_some_and(|r| {
            r["updated"] == 0 && r["parts"].as_array().is_some_and(|p| p.len() == 2)
        })
    });
    assert!(abandoned, "the record does not show two parts let go");
    // 16 MiB of parts and 20 MiB more do not fit in 30 MiB.
    let mut raw = Raw::login(server.addr, b"alice secret");
    raw.send_json(&put("two.bin"));
    let reply = raw.reply().unwrap();
    assert_eq!(reply["code"], "quota_exceeded", "{reply}");
    raw.send_json(&serde_json::json!({"cmd":"quota"}));
    assert_eq!(raw.reply().unwrap()["used"], 16 << 20);
    // Removing the partial upload frees its parts.
    raw.send_json(&serde_json::json!({"cmd":"rm","filename":"big.bin"}));
    assert_eq!(raw.reply().unwrap()["status"], "ok");
    raw.send_json(&serde_json::json!({"cmd":"quota"}));
    assert_eq!(raw.reply().unwrap()["used"], 0);
    // A put that asks for `ready` and leaves stores no record.
    raw.send_json(&put("probe.bin"));
    assert_eq!(raw.reply().unwrap()["offset"], 0);
    drop(raw);
    server.wait_for_event(&[
        ("cmd", "put"),
        ("path", "/probe.bin"),
        ("result", "aborted"),
    ]);
    assert!(record(garage, "parts", "alice/probe.bin").is_none());
}

#[test]
fn bad_credentials_or_no_store_stop_the_server_with_the_reason() {
    let garage = Garage::shared();
    let sb = Sandbox::new();
    let mut env = garage.env();
    env.retain(|(k, _)| *k != "AWS_SECRET_ACCESS_KEY");
    env.push(("AWS_SECRET_ACCESS_KEY", "f".repeat(64)));
    let root = format!("s3://{BUCKET}/x");
    let log = ServerProcess::launch(&sb, &[], &root, &[], Some(SECRET), &env)
        .err()
        .expect("refused");
    assert!(log.contains("error: the object store at"), "{log}");
    assert!(log.contains("refused access to bucket ftp"), "{log}");

    let mut env = garage.env();
    env.retain(|(k, _)| *k != "AWS_ENDPOINT_URL");
    env.push(("AWS_ENDPOINT_URL", "http://127.0.0.1:9".into()));
    let log = ServerProcess::launch(&sb, &[], &root, &[], Some(SECRET), &env)
        .err()
        .expect("refused");
    assert!(
        log.contains(
            "error: cannot reach the object store at http://127.0.0.1:9 (check \
             AWS_ENDPOINT_URL): Connection refused"
        ),
        "{log}"
    );
}

#[test]
fn an_upload_resumes_once_the_store_is_back() {
    // The store stops and comes back: a node of this test's own.
    let mut garage = Garage::own();
    let sb = Sandbox::new();
    let a = s3_server(&sb, &garage, "away", &[]);
    let data = pattern(24 << 20, 8);
    sb.local_file("big.bin", &data);
    let client = slow_put(&sb, &a.addr_string(), "big.bin");
    wait_for_a_part(&garage, "away", "big.bin");
    garage.stop();
    let out = wait_output(client, CLIENT_LIMIT);
    assert!(!out.status.success());
    assert_stderr_has(&out, "error: put big.bin");
    garage.restart();
    let out = ClientRun::new(&sb, &a, &["put", "big.bin"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_stdout_has(&out, "resumed at byte");
    assert_eq!(fetch(&sb, &a.addr_string(), "big.bin"), data);
}

#[test]
fn the_sweeper_aborts_uploads_left_longer_than_the_partial_ttl() {
    let garage = Garage::shared();
    let sb = Sandbox::new();
    let mut a = s3_server(&sb, garage, "sweep", &[]);
    sb.local_file("big.bin", &pattern(24 << 20, 10));
    let client = slow_put(&sb, &a.addr_string(), "big.bin");
    let state = wait_for_a_part(garage, "sweep", "big.bin");
    a.kill();
    drop(wait_output(client, CLIENT_LIMIT));
    // A server that keeps partial uploads for 0 hours sweeps at start.
    let _b = s3_server(&sb, garage, "sweep", &["--partial-ttl", "0"]);
    assert!(wait_until(Duration::from_secs(20), || record(
        garage, "sweep", "big.bin"
    )
    .is_none()));
    let upload_id = state["upload_id"].as_str().unwrap();
    let parts = garage.client().list_parts("sweep/big.bin", upload_id);
    assert!(parts.is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound));
}

/// A running HAProxy, stopped when dropped, even by a failed assertion.
struct Proxy(std::process::Child);

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// HAProxy in TCP mode, balancing round-robin over `servers`: the
/// process and its address.
fn haproxy(sb: &Sandbox, servers: &[&ServerProcess]) -> (Proxy, String) {
    let binary = [
        "/usr/sbin/haproxy",
        "/usr/local/sbin/haproxy",
        "/usr/bin/haproxy",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).is_file());
    let binary = binary.expect("no haproxy: apt-get install haproxy");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let backends: String = servers
        .iter()
        .enumerate()
        .map(|(i, s)| format!("  server s{i} {}\n", s.addr_string()))
        .collect();
    let config = format!(
        "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\
         frontend ftp\n  bind 127.0.0.1:{port}\n  default_backend servers\n\
         backend servers\n  balance roundrobin\n{backends}"
    );
    let path = sb.path().join("haproxy.cfg");
    std::fs::write(&path, config).unwrap();
    let proxy = std::process::Command::new(binary)
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(Proxy)
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    assert!(wait_until(Duration::from_secs(10), || {
        std::net::TcpStream::connect(&addr).is_ok()
    }));
    (proxy, addr)
}

#[test]
fn behind_haproxy_a_put_cut_off_resumes_through_the_next_server() {
    let garage = Garage::shared();
    let sb = Sandbox::new();
    let a = s3_server(&sb, garage, "lb", &[]);
    let b = s3_server(&sb, garage, "lb", &[]);
    let (_proxy, addr) = haproxy(&sb, &[&a, &b]);
    let data = pattern(24 << 20, 9);
    sb.local_file("big.bin", &data);
    let mut client = slow_put(&sb, &addr, "big.bin");
    wait_for_a_part(garage, "lb", "big.bin");
    client.kill().unwrap();
    client.wait().unwrap();
    // The next connection goes to the other server, which resumes.
    let out = ClientRun::to(&sb, &addr, &["put", "big.bin"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_stdout_has(&out, "resumed at byte");
    // A server logs the stored file after its reply: the client can be
    // done first.
    let put = |result| [("cmd", "put"), ("path", "/big.bin"), ("result", result)];
    let resumed_on = |s: &ServerProcess| {
        let ok = s.events_with(&put("ok"));
        ok.iter()
            .any(|e| e["resumed"] == true && e["bytes"].as_u64() < Some(25165824))
    };
    wait_until(Duration::from_secs(10), || resumed_on(&a) || resumed_on(&b));
    let logs = [a.log_text(), b.log_text()];
    let resumed_on = [&a, &b].iter().position(|s| resumed_on(s));
    let cut_on = [&a, &b]
        .iter()
        .position(|s| !s.events_with(&put("aborted")).is_empty());
    assert!(
        resumed_on.is_some() && cut_on.is_some() && resumed_on != cut_on,
        "{logs:?}"
    );
    assert_eq!(fetch(&sb, &addr, "big.bin"), data);
}

#[test]
fn empty_files_missing_names_and_empty_folders_on_the_object_store() {
    let garage = Garage::shared();
    let sb = Sandbox::new();
    let a = s3_server(&sb, garage, "edges", &[]);
    sb.local_file("empty.txt", b"");
    let out = ClientRun::new(&sb, &a, &["put", "empty.txt"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fetch(&sb, &a.addr_string(), "empty.txt"), b"");
    let out = ClientRun::new(&sb, &a, &[]).run_with_input(
        "get missing.bin\nrm missing.bin\ncd nowhere\nmkdir new\nmkdir new\ncd new\nls\npwd\n",
    );
    let (said, shown) = (stderr(&out), stdout(&out));
    assert!(said.contains("no such file: missing.bin"), "{said}");
    assert!(said.contains("no such folder: /nowhere"), "{said}");
    // A folder that is there already is made again, as mkdir -p does.
    assert!(!said.contains("already exists"), "{said}");
    assert!(shown.contains("/new"), "{shown}");
    assert!(object_exists(garage, "edges/new/"));
}

/// A users file with one account, alice, whose quota is 30 MiB; its path.
fn alice_with_30_mib(sb: &Sandbox) -> String {
    let users = sb.path().join("users.toml");
    std::fs::write(
        &users,
        "[[user]]\nname = \"alice\"\nsecret = \"alice secret\"\nquota = \"30MiB\"\n",
    )
    .unwrap();
    users.to_string_lossy().into_owned()
}

//! Delta transfers on the object store (the shared Garage, each test
//! under a prefix of its own): the store copies byte ranges of the old
//! object into the new one (`UploadPartCopy`), a changed file sends only
//! its changes and lands byte-identical, and a hostile recipe stores
//! nothing.

use std::io::Read;

use ftp::wire::delta::recipe::RecipeBuilder;

use crate::deltas::{hostile_put, matched, raw_signature, received_by, spliced};
use crate::s3::{fetch, s3_server, slow_put, wait_for_a_part};
use crate::support::garage::Garage;
use crate::support::*;

/// A multipart object made of a part copied from a byte range of another
/// object (pinned to that object's entity tag) and an uploaded part holds
/// exactly those bytes; a copy pinned to a tag the object no longer has is
/// refused.
#[test]
fn the_store_copies_a_byte_range_of_an_object_into_a_part() {
    let client = Garage::shared().client();
    let old = pattern(12 << 20, 31);
    let etag = client.put("part-copy/old.bin", &old).unwrap();
    let new_key = "part-copy/new.bin";
    let upload = client.create_multipart(new_key).unwrap();
    let range = (1 << 20) + 7..(7 << 20) + 7;
    let copied = client
        .upload_part_copy(
            (new_key, &upload, 1),
            "part-copy/old.bin",
            range.clone(),
            &etag,
        )
        .unwrap_or_else(|e| panic!("UploadPartCopy with a range: {e}"));
    let tail = b"and new bytes after";
    let sent = client.upload_part(new_key, &upload, 2, tail).unwrap();
    client
        .complete_multipart(new_key, &upload, &[copied, sent])
        .unwrap();
    let mut got = Vec::new();
    client
        .get_from(new_key, 0)
        .unwrap()
        .read_to_end(&mut got)
        .unwrap();
    let mut want = old[range.start as usize..range.end as usize].to_vec();
    want.extend_from_slice(tail);
    assert!(got == want, "the copied object differs");

    // The old object replaced: a copy pinned to its old tag is refused.
    client.put("part-copy/old.bin", &old[..9 << 20]).unwrap();
    let again = client.create_multipart(new_key).unwrap();
    let stale =
        client.upload_part_copy((new_key, &again, 1), "part-copy/old.bin", 0..6 << 20, &etag);
    assert!(stale.is_err(), "a copy of a replaced object went through");
    client.abort_multipart(new_key, &again).unwrap();
}

/// Puts `name` (its local content `data`) through the server at `addr`;
/// returns the client's summary.
fn put(sb: &Sandbox, addr: &str, name: &str, data: &[u8]) -> String {
    sb.local_file(name, data);
    let out = ClientRun::to(sb, addr, &["put", name]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

/// `old` with 4 KiB overwritten at each of `at`.
fn overwritten(old: &[u8], at: &[usize]) -> Vec<u8> {
    let mut new = old.to_vec();
    for (i, &at) in at.iter().enumerate() {
        new[at..at + 4096].copy_from_slice(&pattern(4096, 100 + i as u64));
    }
    new
}

#[test]
fn a_changed_big_file_sends_only_its_changes_and_the_store_copies_the_rest() {
    let garage = Garage::shared();
    let sb = Sandbox::new();
    let server = s3_server(&sb, garage, "delta-big", &[]);
    let addr = server.addr_string();
    const SIZE: usize = 40 << 20;
    let old = pattern(SIZE, 41);
    put(&sb, &addr, "big.bin", &old);
    // Scattered overwrites in the first part, 100 kB inserted in the
    // third: the others are unbroken ranges of the old object.
    let changed = overwritten(&old, &[1 << 20, (3 << 20) + 5000, (6 << 20) + 99]);
    let new = spliced(&changed, 20 << 20, 0, &pattern(100_000, 7));
    let text = put(&sb, &addr, "big.bin", &new);
    let share = matched(&text);
    assert!(share > 95.0, "only {share}% matched: {text}");
    let sent = received_by(&server, "big.bin", 2);
    assert!(sent < 2 << 20, "{sent} bytes sent for a 112 kB change");
    let copied = server.wait_for_said(&[], "the object store copied");
    assert!(
        fetch(&sb, &addr, "big.bin") == new,
        "the stored file differs"
    );
    // Parts 2, 4 and 5 (8 MiB each) and the short last one are unbroken
    // ranges of the old object; parts 1 and 3 hold the changes.
    let said = copied["message"].as_str().unwrap_or_default();
    let want = format!("copied {} of its {} bytes", (24 << 20) + 100_000, new.len());
    assert!(said.contains(&want), "{said}");
}

#[test]
fn a_delta_upload_killed_on_the_object_store_resumes_and_ends_identical() {
    let garage = Garage::shared();
    let sb = Sandbox::new();
    let server = s3_server(&sb, garage, "delta-resume", &[]);
    let addr = server.addr_string();
    let old = pattern(32 << 20, 51);
    put(&sb, &addr, "big.bin", &old);
    // The first 24 MiB new: six seconds at 4 MiB/s, cut once a part of
    // them is recorded (the record is rewritten every second or two).
    let mut new = old.clone();
    new[..24 << 20].copy_from_slice(&pattern(24 << 20, 52));
    sb.local_file("big.bin", &new);
    let mut first = slow_put(&sb, &addr, "big.bin");
    wait_for_a_part(garage, "delta-resume", "big.bin");
    first.kill().unwrap();
    first.wait().unwrap();
    let out = ClientRun::to(&sb, &addr, &["put", "big.bin"]).run();
    assert!(out.status.success(), "{}", stderr(&out));
    // The parts stored before the cut (at least the first 8 MiB) were
    // not built or sent again: 24 MiB of new bytes, and the chunk across
    // their end, less 8 MiB.
    let sent = received_by(&server, "big.bin", 2);
    assert!(sent < 17 << 20, "{sent} bytes sent after the cut");
    assert!(
        fetch(&sb, &addr, "big.bin") == new,
        "the stored file differs"
    );
}

#[test]
fn a_file_replaced_behind_the_servers_back_goes_whole_and_the_log_says_why() {
    let garage = Garage::shared();
    let sb = Sandbox::new();
    let server = s3_server(&sb, garage, "delta-stale", &[]);
    let addr = server.addr_string();
    let old = pattern(2 << 20, 21);
    put(&sb, &addr, "big.bin", &old);
    // The same size, other bytes: its kept signature names another tag.
    let behind = pattern(2 << 20, 22);
    garage.client().put("delta-stale/big.bin", &behind).unwrap();
    let new = overwritten(&behind, &[1 << 20]);
    let text = put(&sb, &addr, "big.bin", &new);
    assert!(!text.contains("matched"), "{text}");
    let sig = [("cmd", "sig"), ("path", "/big.bin")];
    server.wait_for_said(&sig, "keeps no signature of this version");
    assert!(
        fetch(&sb, &addr, "big.bin") == new,
        "the stored file differs"
    );
    // The whole put kept a fresh signature: the next change is a delta.
    let again = overwritten(&new, &[4096]);
    let text = put(&sb, &addr, "big.bin", &again);
    assert!(matched(&text) > 80.0, "{text}");
    assert!(
        fetch(&sb, &addr, "big.bin") == again,
        "the stored file differs"
    );
}

#[test]
fn hostile_recipes_on_the_object_store_store_nothing() {
    let garage = Garage::shared();
    let sb = Sandbox::new();
    let server = s3_server(&sb, garage, "delta-hostile", &[]);
    let old = pattern(12 << 20, 8);
    put(&sb, &server.addr_string(), "f", &old);
    let (_, base, chunks) = raw_signature(&server, "f");
    let chunks = chunks as u32;
    let recipe = |ops: &dyn Fn(&mut RecipeBuilder)| {
        let mut b = RecipeBuilder::default();
        ops(&mut b);
        b.encode()
    };
    let cases: Vec<(u64, Vec<u8>, &str)> = vec![
        (
            65_536,
            recipe(&|b| b.copy(chunks)),
            "of an old file that has",
        ),
        (
            old.len() as u64 + 1,
            recipe(&|b| (0..chunks).for_each(|i| b.copy(i))),
            "builds",
        ),
        (10, vec![7, 1, 2, 3], "unknown recipe operation"),
    ];
    for (filesize, bytes, says) in cases {
        let (mut raw, _, _) = raw_signature(&server, "f");
        let reply = hostile_put(&mut raw, &base, filesize, &bytes);
        assert_eq!(reply["code"], "bad_request", "{reply}");
        assert!(reply["message"].as_str().unwrap().contains(says), "{reply}");
        let record = garage.client().head("delta-hostile/.ftp-partial/f");
        assert!(record.is_err(), "an upload was left for {reply}");
        let mut stored = Vec::new();
        let mut reader = garage.client().get_from("delta-hostile/f", 0).unwrap();
        reader.read_to_end(&mut stored).unwrap();
        assert!(stored == old, "the stored file changed");
    }
}

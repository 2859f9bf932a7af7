//! The disk store's tests: uploads, the usage book and planted links.

use super::*;
use crate::testing::noise;

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn an_upload_lands_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let store = DiskStore::open(dir.path(), false, Modes::PRIVATE).unwrap();
    let home = names(&[]);
    let at = Place::new(&home, &home);
    let plan = UploadPlan {
        filesize: 6,
        resume: true,
        hash: true,
        overwrite: true,
        mtime: None,
        mode: None,
    };
    let mut up = store.begin_upload(at, "f", plan).unwrap();
    up.write(b"abc").unwrap();
    drop(up);
    assert_eq!(
        store.file_len(at, "f").unwrap(),
        None,
        "invisible until done"
    );
    let mut up = store.begin_upload(at, "f", plan).unwrap();
    assert_eq!(up.offset(), 3);
    up.write(b"xyz").unwrap();
    let wrong = blake3::hash(b"abcxyZ");
    assert!(matches!(
        up.finish(Some(wrong)),
        Err(StoreError::DigestMismatch)
    ));
    assert_eq!(store.file_len(at, "f").unwrap(), None);
    let mut up = store.begin_upload(at, "f", plan).unwrap();
    assert_eq!(up.offset(), 0, "a mismatch discards the partial data");
    up.write(b"abcxyz").unwrap();
    let digest = up.finish(Some(blake3::hash(b"abcxyz"))).unwrap();
    assert_eq!(digest, Some(blake3::hash(b"abcxyz")));
    assert_eq!(fs::read(dir.path().join("f")).unwrap(), b"abcxyz");
    let mut file = store.open_file(at, "f").unwrap();
    let mut tail = String::new();
    file.read_from(4)
        .unwrap()
        .read_to_string(&mut tail)
        .unwrap();
    assert_eq!((file.size(), tail.as_str()), (6, "yz"));
}

#[test]
fn the_book_counts_entries_as_a_walk_would_through_every_change() {
    let dir = tempfile::tempdir().unwrap();
    let store = DiskStore::open(dir.path(), false, Modes::PRIVATE).unwrap();
    let (home, top) = (names(&["alice"]), names(&[]));
    store.open_home(&home).unwrap();
    let at = Place::new(&home, &top);
    let walked = || usage::measure(&dir.path().join("alice")).unwrap();
    let plan = |filesize| UploadPlan {
        filesize,
        resume: true,
        hash: false,
        overwrite: true,
        mtime: None,
        mode: None,
    };
    assert_eq!(store.usage(&home).unwrap(), walked(), "measured first");
    store
        .make_folder(Place::new(&home, &names(&["a", "b"])))
        .unwrap();
    let mut up = store.begin_upload(at, "f", plan(4)).unwrap();
    up.write(b"ab").unwrap();
    drop(up);
    assert_eq!(store.usage(&home).unwrap(), walked(), "with a partial");
    let mut up = store.begin_upload(at, "f", plan(4)).unwrap();
    up.write(b"cd").unwrap();
    up.finish(None).unwrap();
    let mut up = store.begin_upload(at, "f", plan(1)).unwrap();
    up.write(b"e").unwrap();
    up.finish(None).unwrap();
    assert_eq!(store.usage(&home).unwrap(), walked(), "after a replacement");
    // An upload that wrote nothing leaves nothing.
    drop(store.begin_upload(at, "probe", plan(9)).unwrap());
    store.begin_upload(at, "gone", plan(9)).unwrap().discard();
    store
        .remove(Place::new(&home, &names(&["a"])), "b")
        .unwrap();
    assert_eq!(store.usage(&home).unwrap(), walked(), "after removals");
    let u = store.usage(&home).unwrap();
    assert_eq!((u.bytes, u.entries), (1, 2), "the file f and the folder a");
}

#[test]
fn rm_removes_nothing_through_a_planted_partial_folder() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let store = DiskStore::open(dir.path(), false, Modes::PRIVATE).unwrap();
    fs::write(dir.path().join("a.txt"), b"mine").unwrap();
    fs::write(outside.path().join("a.txt"), b"not the server's").unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join(PARTIAL_DIR)).unwrap();
    let home = names(&[]);
    let at = Place::new(&home, &home);
    store.remove(at, "a.txt").unwrap();
    assert!(!store.remove_partial(at, "a.txt").unwrap());
    assert_eq!(store.kept(at, "a.txt", 100).unwrap(), 0);
    assert!(!dir.path().join("a.txt").exists());
    assert_eq!(
        fs::read(outside.path().join("a.txt")).unwrap(),
        b"not the server's"
    );
}

#[test]
fn a_link_planted_as_the_partial_folder_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let store = DiskStore::open(dir.path(), false, Modes::PRIVATE).unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join(PARTIAL_DIR)).unwrap();
    let home = names(&[]);
    let at = Place::new(&home, &home);
    let plan = UploadPlan {
        filesize: 3,
        resume: false,
        hash: false,
        overwrite: true,
        mtime: None,
        mode: None,
    };
    let refused = store.begin_upload(at, "f", plan).err().unwrap();
    let refused_link =
        |e: &io::Error| matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR));
    assert!(matches!(refused, StoreError::Failed(_, ref e) if refused_link(e)));
    assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
    // A file reached through a linked folder is not served either.
    fs::write(outside.path().join("secret"), b"s").unwrap();
    let partial_home = names(&[PARTIAL_DIR]);
    assert!(store
        .open_file(Place::new(&home, &partial_home), "secret")
        .is_err());
}

/// The signature the store gives for `name`, decoded as a client would.
fn signature_of(store: &DiskStore, at: Place, name: &str) -> (Signature, Vec<u8>) {
    let mut sig = store.signature(at, name).unwrap();
    let mut entries = Vec::new();
    sig.entries.read_to_end(&mut entries).unwrap();
    (sig, entries)
}

#[test]
fn a_signature_is_kept_hidden_counted_and_cut_again_when_stale() {
    use crate::wire::delta::signature::decode_all;
    let dir = tempfile::tempdir().unwrap();
    let store = DiskStore::open(dir.path(), false, Modes::PRIVATE).unwrap();
    let (home, top) = (names(&["alice"]), names(&[]));
    store.open_home(&home).unwrap();
    let at = Place::new(&home, &top);
    let path = dir.path().join("alice/big");
    let data = noise(1 << 20, 3);
    fs::write(&path, &data).unwrap();
    let before = store.usage(&home).unwrap();

    let (sig, entries) = signature_of(&store, at, "big");
    assert_eq!(
        (sig.size, sig.blake3),
        (data.len() as u64, blake3::hash(&data))
    );
    let chunks = decode_all(sig.size, sig.chunks, &entries).unwrap();
    assert_eq!(chunks, crate::io::chunks::signature(&data[..]).unwrap());
    let kept = dir.path().join("alice/.ftp-partial/.ftp-partial/big");
    let kept_len = fs::metadata(&kept).unwrap().len();
    assert!(kept_len > entries.len() as u64);
    // Its bytes count, its entry does not; a listing does not show it.
    let after = store.usage(&home).unwrap();
    assert_eq!(after.bytes, before.bytes + kept_len);
    assert_eq!(after.entries, before.entries);
    assert_eq!(usage::measure(&dir.path().join("alice")).unwrap(), after);
    let listed: Vec<_> = store
        .list(
            at,
            ListHow {
                recursive: true,
                digests: false,
            },
        )
        .unwrap()
        .map(|e| e.unwrap().name)
        .collect();
    assert_eq!(listed, ["big"]);

    // Removing the file takes its signature; so does removing a folder.
    store.remove(at, "big").unwrap();
    assert!(!kept.exists());
    assert_eq!(store.usage(&home).unwrap(), Usage::default());
    let sub = names(&["sub"]);
    store.make_folder(Place::new(&home, &sub)).unwrap();
    fs::write(dir.path().join("alice/sub/f"), b"abc").unwrap();
    let (_, _) = signature_of(&store, Place::new(&home, &sub), "f");
    fs::remove_file(dir.path().join("alice/sub/f")).unwrap();
    store.remove(at, "sub").unwrap();
    assert!(!dir.path().join("alice/sub").exists());
    assert_eq!(store.usage(&home).unwrap(), Usage::default());
}

#[test]
fn a_kept_signature_is_read_back_and_cut_again_once_stale() {
    use crate::wire::delta::signature::decode_all;
    let dir = tempfile::tempdir().unwrap();
    let store = DiskStore::open(dir.path(), false, Modes::PRIVATE).unwrap();
    let (home, top) = (names(&["alice"]), names(&[]));
    store.open_home(&home).unwrap();
    let at = Place::new(&home, &top);
    let path = dir.path().join("alice/big");
    let data = noise(1 << 20, 3);
    fs::write(&path, &data).unwrap();
    let (_, entries) = signature_of(&store, at, "big");
    let kept = dir.path().join("alice/.ftp-partial/.ftp-partial/big");
    // Asked again: read back, not cut again.
    let stamp = fs::metadata(&kept).unwrap().modified().unwrap();
    let (_, again) = signature_of(&store, at, "big");
    assert_eq!(again, entries);
    assert_eq!(fs::metadata(&kept).unwrap().modified().unwrap(), stamp);

    // Changed behind the server's back: same size, a later time.
    let mut changed = data.clone();
    changed[500_000..500_010].copy_from_slice(b"0123456789");
    fs::write(&path, &changed).unwrap();
    crate::testing::modified_later(&path, Duration::from_secs(5));
    let (sig, entries) = signature_of(&store, at, "big");
    assert_eq!(sig.blake3, blake3::hash(&changed));
    let chunks = decode_all(sig.size, sig.chunks, &entries).unwrap();
    assert_eq!(chunks, crate::io::chunks::signature(&changed[..]).unwrap());
    assert_eq!(
        usage::measure(&dir.path().join("alice")).unwrap(),
        store.usage(&home).unwrap()
    );
}

#[test]
fn a_tree_with_signatures_is_removed_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = DiskStore::open(dir.path(), false, Modes::PRIVATE).unwrap();
    let (home, top, sub) = (names(&["alice"]), names(&[]), names(&["sub"]));
    store.open_home(&home).unwrap();
    store.make_folder(Place::new(&home, &sub)).unwrap();
    fs::write(dir.path().join("alice/sub/f"), noise(100_000, 1)).unwrap();
    let _ = signature_of(&store, Place::new(&home, &sub), "f");
    let removed = store
        .remove_tree(Place::new(&home, &top), "sub", &|_| Some(Box::new(())))
        .unwrap();
    assert_eq!(removed, 2);
    assert!(!dir.path().join("alice/sub").exists());
    assert_eq!(store.usage(&home).unwrap(), Usage::default());
}

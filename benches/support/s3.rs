//! The S3 store against its own baseline, in the same run and on the same
//! Garage: a raw multipart upload (and a plain GET) of the same bytes with
//! the same S3 client the server uses, then ftp-client put and get through
//! an ftp-server whose root is that bucket. Small files: one PutObject
//! each against one `put` of many files over one connection.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::Path;
use std::time::{Duration, Instant};

use ftp::testing::inside::part_size;
use ftp::testing::inside::S3Client;

use crate::garage::Garage;
use crate::{median, mib, print_rates, run_client, Scratch, Server, Settings};

/// How many small files, and how big.
const SMALL_FILES: usize = 100;
const SMALL_SIZE: usize = 4096;

pub fn section(s: &Settings, scratch: &Scratch, source: &Path) {
    println!("\n## S3 store (Garage on loopback)");
    let Some(garage) = Garage::start() else {
        println!("(no garage binary: S3 comparisons skipped)");
        return;
    };
    for (key, value) in garage.env() {
        std::env::set_var(key, value);
    }
    let ours = Server::ours(Path::new("s3://ftp/bench"), &[]);
    let client = garage.client();
    let work = scratch.dir.join("s3-work");
    fs::create_dir_all(&work).unwrap();
    let [raw_put, our_put, raw_get, our_get] = rounds(s, &client, &ours, &work, source);
    print_rates(
        s.size,
        &[
            ("raw multipart upload (same S3 client)", &raw_put),
            ("ftp-client put through ftp-server", &our_put),
            ("raw GET into a file (same S3 client)", &raw_get),
            ("ftp-client get through ftp-server", &our_get),
        ],
    );
    let ratio = |raw: &[Duration], ours: &[Duration]| {
        median(raw).as_secs_f64() / median(ours).as_secs_f64()
    };
    println!(
        "put through ftp-server: {:.2}x the raw multipart upload's rate; get: {:.2}x the raw GET's",
        ratio(&raw_put, &our_put),
        ratio(&raw_get, &our_get)
    );
    small_files(s, &client, &ours, &work);
}

/// The interleaved rounds: the raw multipart upload, our put, the raw GET
/// and our get, each path's times.
fn rounds(
    s: &Settings,
    client: &S3Client,
    ours: &Server,
    work: &Path,
    source: &Path,
) -> [Vec<Duration>; 4] {
    let (mut raw_put, mut our_put, mut raw_get, mut our_get) = (vec![], vec![], vec![], vec![]);
    for round in 0..s.rounds {
        // The order turns each round, so that neither path always runs
        // on a warmer store.
        let raw_first = round % 2 == 0;
        for raw in [raw_first, !raw_first] {
            match raw {
                true => raw_put.push(raw_multipart(client, "raw/source.bin", source, s.size)),
                false => {
                    fs::copy(source, work.join("source.bin")).unwrap();
                    our_put.push(run_client(ours.addr, &["put", "source.bin"], work));
                }
            }
        }
        for raw in [raw_first, !raw_first] {
            match raw {
                true => raw_get.push(raw_download(
                    client,
                    "raw/source.bin",
                    &work.join("raw.bin"),
                )),
                false => {
                    let _ = fs::remove_file(work.join("back.bin"));
                    our_get.push(run_client(
                        ours.addr,
                        &["get", "source.bin", "back.bin"],
                        work,
                    ));
                }
            }
        }
    }
    [raw_put, our_put, raw_get, our_get]
}

/// The same bytes as a multipart upload with the server's part size,
/// parts sent one after another.
fn raw_multipart(client: &S3Client, key: &str, source: &Path, size: u64) -> Duration {
    let started = Instant::now();
    let part = part_size(size) as usize;
    let mut file = File::open(source).unwrap();
    let mut buf = Vec::with_capacity(part);
    let upload = client.create_multipart(key).unwrap();
    let mut etags = Vec::new();
    for number in 1u16.. {
        buf.clear();
        (&mut file).take(part as u64).read_to_end(&mut buf).unwrap();
        if buf.is_empty() && number > 1 {
            break;
        }
        etags.push(client.upload_part(key, &upload, number, &buf).unwrap());
        if buf.len() < part {
            break;
        }
    }
    client.complete_multipart(key, &upload, &etags).unwrap();
    started.elapsed()
}

/// The object into a file, as a download lands.
fn raw_download(client: &S3Client, key: &str, to: &Path) -> Duration {
    let started = Instant::now();
    let mut body = client.get_from(key, 0).unwrap();
    io::copy(&mut body, &mut File::create(to).unwrap()).unwrap();
    started.elapsed()
}

/// Small files per second: PutObject each, against `put` of them all.
fn small_files(s: &Settings, client: &S3Client, ours: &Server, work: &Path) {
    let dir = work.join("small");
    fs::create_dir_all(&dir).unwrap();
    let names: Vec<String> = (0..SMALL_FILES).map(|i| format!("s{i:03}.bin")).collect();
    for (i, name) in names.iter().enumerate() {
        fs::write(dir.join(name), vec![i as u8; SMALL_SIZE]).unwrap();
    }
    let (mut raw, mut mine) = (vec![], vec![]);
    for _ in 0..s.rounds {
        let started = Instant::now();
        for name in &names {
            let bytes = fs::read(dir.join(name)).unwrap();
            client.put(&format!("raw-small/{name}"), &bytes).unwrap();
        }
        raw.push(started.elapsed());
        let mut args = vec!["put"];
        args.extend(names.iter().map(String::as_str));
        mine.push(run_client(ours.addr, &args, &dir));
    }
    let rate = |v: &[Duration]| SMALL_FILES as f64 / median(v).as_secs_f64();
    println!(
        "{SMALL_FILES} files of {} each: raw PutObject {:.0} files/s, ftp-client put {:.0} files/s: {:.2}x",
        mib_or_kib(SMALL_SIZE),
        rate(&raw),
        rate(&mine),
        rate(&mine) / rate(&raw)
    );
}

fn mib_or_kib(n: usize) -> String {
    match n >= 1 << 20 {
        true => mib(n as u64),
        false => format!("{} KiB", n / 1024),
    }
}

use super::*;
use tempfile::TempDir;

fn header(format: Format) -> BodyHeader {
    BodyHeader {
        format,
        precision: Precision::S,
        default_ts_ms: 1_700_000_000_123,
        extra_labels: vec![("dc".into(), "eu".into()), ("db".into(), "telegraf é".into())],
    }
}

fn small(max_segment_bytes: u64) -> SpoolConfig {
    SpoolConfig { max_segment_bytes, max_segment_age: Duration::from_secs(3600), sync: false }
}

fn open(dir: &Path, config: SpoolConfig) -> Recovered {
    Spool::open(dir, config).unwrap()
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    list_segments(dir).unwrap().into_iter().map(|s| s.1).collect()
}

fn bodies(r: &Recovered) -> Vec<(u64, Vec<u8>)> {
    r.pending.iter().map(|p| (p.seq, r.spool.read(p.seq).unwrap().1)).collect()
}

#[test]
fn spool_bodies_not_done_are_replayed_with_their_header() {
    let dir = TempDir::new().unwrap();
    let r = open(dir.path(), SpoolConfig::default());
    assert!(r.pending.is_empty() && r.issues.is_empty());
    let a = r.spool.append(&header(Format::Influx), b"cpu v=1 1").unwrap();
    let b = r.spool.append(&header(Format::RemoteWrite), b"\x00\x01binary\xff").unwrap();
    let c = r.spool.append(&header(Format::PrometheusText), b"").unwrap();
    assert_eq!((a, b, c), (1, 2, 3));
    drop(r);

    let r = open(dir.path(), SpoolConfig::default());
    assert!(r.issues.is_empty(), "{:?}", r.issues);
    let seqs: Vec<u64> = r.pending.iter().map(|p| p.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3]);
    assert_eq!(r.pending[0].header, header(Format::Influx));
    assert_eq!(r.pending[1].header.format, Format::RemoteWrite);
    assert_eq!(r.pending[1].len, 9);
    assert_eq!(r.spool.read(2).unwrap(), (header(Format::RemoteWrite), b"\x00\x01binary\xff".to_vec()));
    assert_eq!(r.spool.read(3).unwrap().1, b"".to_vec());
    // new bodies continue the sequence
    assert_eq!(r.spool.append(&header(Format::Influx), b"next").unwrap(), 4);
    assert_eq!(r.spool.info().pending, 4);
}

#[test]
fn spool_done_bodies_are_not_replayed() {
    let dir = TempDir::new().unwrap();
    let r = open(dir.path(), SpoolConfig::default());
    for i in 0..10 {
        r.spool.append(&header(Format::Influx), format!("b{i}").as_bytes()).unwrap();
    }
    assert_eq!(r.spool.done(&[3, 1, 2, 7]).unwrap(), 4);
    // done twice, or never appended: ignored
    assert_eq!(r.spool.done(&[3, 99]).unwrap(), 0);
    assert_eq!(r.spool.info().pending, 6);
    drop(r);

    let r = open(dir.path(), SpoolConfig::default());
    let got = bodies(&r);
    let want: Vec<(u64, Vec<u8>)> =
        [4u64, 5, 6, 8, 9, 10].iter().map(|&s| (s, format!("b{}", s - 1).into_bytes())).collect();
    assert_eq!(got, want);
    // replayed bodies marked done after the restart are not replayed on the next one
    r.spool.done(&[4, 5, 6, 8]).unwrap();
    assert!(matches!(r.spool.read(4), Err(e) if e.kind == ErrorKind::NotFound));
    drop(r);
    let r = open(dir.path(), SpoolConfig::default());
    assert_eq!(r.pending.iter().map(|p| p.seq).collect::<Vec<_>>(), vec![9, 10]);
}

#[test]
fn spool_segments_rotate_and_are_deleted_once_done_in_order() {
    let dir = TempDir::new().unwrap();
    let r = open(dir.path(), small(1000));
    let body = vec![b'x'; 300];
    let seqs: Vec<u64> = (0..20).map(|_| r.spool.append(&header(Format::Influx), &body).unwrap()).collect();
    // appenders rotate only far over the size (4x): 20 bodies of ~350 bytes in 2 segments
    let before = segments(dir.path()).len();
    assert!(before >= 2, "{before} segments");

    // the first body stays pending: nothing can be deleted, the rest are done
    for s in &seqs[1..] {
        r.spool.done(&[*s]).unwrap();
    }
    let kept = segments(dir.path()).len();
    assert!(kept > 2, "rotated segments are kept while an older body is pending: {kept}");
    assert!(segments(dir.path())[0].ends_with(format!("{:020}.spool", 1)));

    r.spool.done(&[seqs[0]]).unwrap();
    let left = segments(dir.path());
    assert_eq!(left.len(), 1, "only the active segment is left: {left:?}");
    let info = r.spool.info();
    assert_eq!((info.segments, info.pending), (1, 0));
    assert_eq!(info.bytes, std::fs::metadata(&left[0]).unwrap().len());
    drop(r);

    let r = open(dir.path(), small(1000));
    assert!(r.pending.is_empty());
    assert!(r.issues.is_empty(), "{:?}", r.issues);
    // the old segment held completion records only: it is gone, the new one is active
    assert_eq!(segments(dir.path()).len(), 1);
    // the numbers seen in the deleted segment's completion records are not reused
    assert_eq!(r.spool.append(&header(Format::Influx), b"x").unwrap(), 21);
}

#[test]
fn spool_an_idle_segment_rotates_by_age_so_the_spool_empties() {
    let dir = TempDir::new().unwrap();
    let config = SpoolConfig { max_segment_bytes: 1 << 20, max_segment_age: Duration::from_millis(20), sync: true };
    let r = open(dir.path(), config);
    let a = r.spool.append(&header(Format::VmJson), b"{}").unwrap();
    std::thread::sleep(Duration::from_millis(30));
    r.spool.done(&[a]).unwrap();
    // the segment with the body was closed and deleted; the new one holds nothing yet
    let segs = segments(dir.path());
    assert_eq!(segs.len(), 1);
    assert_eq!(std::fs::metadata(&segs[0]).unwrap().len(), 0);
}

#[test]
fn spool_torn_tail_is_cut_with_a_warning_and_the_rest_replayed() {
    let dir = TempDir::new().unwrap();
    let r = open(dir.path(), SpoolConfig::default());
    for i in 0..3 {
        r.spool.append(&header(Format::Influx), format!("body {i}").as_bytes()).unwrap();
    }
    drop(r);
    let seg = segments(dir.path()).pop().unwrap();
    let len = std::fs::metadata(&seg).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(len - 3).unwrap();
    drop(f);

    let r = open(dir.path(), SpoolConfig::default());
    assert_eq!(bodies(&r), vec![(1, b"body 0".to_vec()), (2, b"body 1".to_vec())]);
    assert_eq!(r.issues.len(), 1);
    assert_eq!(r.issues[0].kind, IssueKind::TornTail);
    assert_eq!(r.issues[0].path, seg);
    assert!(std::fs::metadata(&seg).unwrap().len() < len - 3, "the torn record was cut off");
    drop(r);
    let r = open(dir.path(), SpoolConfig::default());
    assert!(r.issues.is_empty(), "{:?}", r.issues);
    assert_eq!(r.pending.len(), 2);
}

#[test]
fn spool_a_corrupt_record_is_skipped_and_reported_with_file_and_offset() {
    let dir = TempDir::new().unwrap();
    let r = open(dir.path(), SpoolConfig::default());
    for i in 0..3 {
        r.spool.append(&header(Format::Influx), format!("body number {i}").as_bytes()).unwrap();
    }
    drop(r);
    let seg = segments(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let rec = bytes.len() / 3;
    bytes[rec + rec - 2] ^= 0xff; // last byte of the second body
    std::fs::write(&seg, &bytes).unwrap();

    let r = open(dir.path(), SpoolConfig::default());
    assert_eq!(bodies(&r), vec![(1, b"body number 0".to_vec()), (3, b"body number 2".to_vec())]);
    assert_eq!(r.issues.len(), 1);
    assert_eq!(r.issues[0].kind, IssueKind::Corrupt);
    assert_eq!((r.issues[0].path.clone(), r.issues[0].offset), (seg, rec as u64));
}

#[test]
fn spool_a_record_with_good_checksums_but_bad_content_is_reported_not_fatal() {
    let dir = TempDir::new().unwrap();
    let path = segment_path(dir.path(), 1);
    let mut w = LogWriter::open(&path).unwrap();
    w.append(&[9, 1, 2, 3]).unwrap(); // unknown kind
    w.append(&[KIND_BODY, 1, 0]).unwrap(); // cut short
    w.append(&[KIND_DONE, 0xff, 0xff, 0xff, 0x7f]).unwrap(); // absurd count
    drop(w);
    let r = open(dir.path(), SpoolConfig::default());
    assert!(r.pending.is_empty());
    let msgs: Vec<&str> = r.issues.iter().map(|i| i.message.as_str()).collect();
    assert_eq!(r.issues.len(), 3, "{msgs:?}");
    assert!(msgs[0].contains("unknown record kind 9"), "{msgs:?}");
    assert_eq!(r.issues[1].offset, (HEADER_LEN + 4) as u64);
}

#[test]
fn spool_concurrent_appends_get_distinct_numbers_and_all_survive() {
    let dir = TempDir::new().unwrap();
    let r = open(dir.path(), small(4096));
    let spool = Arc::new(r.spool);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let s = spool.clone();
            std::thread::spawn(move || {
                (0..500)
                    .map(|i| {
                        let seq = s.append(&header(Format::Influx), format!("t{t} i{i}").as_bytes()).unwrap();
                        if i % 2 == 0 {
                            s.done(&[seq]).unwrap();
                        }
                        (seq, format!("t{t} i{i}"), i % 2 == 0)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all: Vec<(u64, String, bool)> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    all.sort();
    assert_eq!(all.iter().map(|a| a.0).collect::<Vec<_>>(), (1..=2000).collect::<Vec<_>>());
    drop(spool);

    let r = open(dir.path(), small(4096));
    assert!(r.issues.is_empty(), "{:?}", r.issues);
    let want: Vec<(u64, Vec<u8>)> = all.into_iter().filter(|a| !a.2).map(|a| (a.0, a.1.into_bytes())).collect();
    assert_eq!(bodies(&r), want);
}

#[test]
fn spool_done_ranges_are_sorted_and_merged() {
    assert_eq!(ranges(&mut [5, 3, 4, 9, 1, 4]), vec![(1, 1), (3, 3), (9, 1)]);
    assert_eq!(ranges(&mut []), vec![]);
    let p = done_payload(&[(7, 3)]);
    match decode(&p).unwrap() {
        Record::Done(r) => assert_eq!(r, vec![(7, 3)]),
        _ => panic!("not a completion record"),
    }
}

#[test]
fn spool_a_closed_spool_refuses_appends_and_keeps_what_it_has() {
    let dir = TempDir::new().unwrap();
    let r = open(dir.path(), SpoolConfig::default());
    let a = r.spool.append(&header(Format::Influx), b"kept").unwrap();
    r.spool.close();
    let e = r.spool.append(&header(Format::Influx), b"refused").unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable);
    assert!(e.message.contains("closed"), "{e}");
    assert_eq!(r.spool.done(&[a]).unwrap_err().kind, ErrorKind::Unavailable);
    drop(r);
    let r = open(dir.path(), SpoolConfig::default());
    assert_eq!(bodies(&r), vec![(1, b"kept".to_vec())]);
}

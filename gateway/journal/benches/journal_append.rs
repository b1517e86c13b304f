//! Journal append rates, single appender vs 32 concurrent (group commit), against
//! the raw append+fdatasync rate of the same disk. Run with
//! `cargo bench -p journal --bench journal_append`.

use std::time::Instant;

use journal::bench_support::{oru, raw_fdatasync_rate};
use journal::{Journal, JournalConfig, NewMessage};

fn msg(cid: String) -> NewMessage {
    oru(&cid, 1, 60)
}

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(append_rates());
}

async fn append_rates() {
    let t = tempfile::Builder::new()
        .prefix("jbench")
        .tempdir_in(".")
        .unwrap();
    let raw = raw_fdatasync_rate(t.path(), 300).unwrap();
    let j = Journal::open(JournalConfig::new(t.path().join("j"))).unwrap();
    let n = 300;
    let start = Instant::now();
    for i in 0..n {
        j.append(msg(format!("S{i}"))).await.unwrap();
    }
    let single = n as f64 / start.elapsed().as_secs_f64();
    let c0 = j.commit_stats();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for task in 0..32 {
        let j = j.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                j.append(msg(format!("C{task}-{i}"))).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let conc = 1600.0 / start.elapsed().as_secs_f64();
    let c1 = j.commit_stats();
    eprintln!(
        "raw append+fdatasync: {raw:.0}/s; journal single appender: {single:.0}/s; 32 appenders: {conc:.0}/s, \
         {:.1} requests per commit (largest {}); commits that also synced sled: {} of {}; checkpoints: {}",
        (c1.requests - c0.requests) as f64 / (c1.commits - c0.commits) as f64,
        c1.largest_batch,
        c1.sled_syncs,
        c1.commits,
        c1.checkpoints
    );
}

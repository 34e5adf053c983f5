//! Subscription tree: publish (match) cost against 1k–100k filters, plain and
//! wildcard-heavy, and insert cost. The target is a flat publish cost (within
//! 2x) from 1k to 100k non-matching filters.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use sngate::broker::api::SubscriptionOptions;
use sngate::broker::subscriptions::{SessionKey, Subscriber, SubscriptionTree};

const SIZES: [usize; 3] = [1_000, 10_000, 100_000];

fn sub(n: usize) -> Subscriber {
    Subscriber {
        session: SessionKey(n as u64),
        options: SubscriptionOptions::default(),
        subscription_id: None,
        shared: None,
    }
}

/// Filter `i` of a mixed population: a third exact, a third with `+`, a third with `#`,
/// plus some with a leading `+` so the root's wildcard child is walked too.
fn filter(i: usize, wildcard_heavy: bool) -> String {
    if !wildcard_heavy {
        return format!("site/{}/dev/{i}/temp", i % 100);
    }
    match i % 4 {
        0 => format!("site/{}/dev/{i}/temp", i % 100),
        1 => format!("site/{}/+/{i}/temp", i % 100),
        2 => format!("site/{}/dev/{i}/#", i % 100),
        _ => format!("+/{i}/dev/+/status"),
    }
}

fn tree(n: usize, wildcard_heavy: bool) -> SubscriptionTree {
    let mut t = SubscriptionTree::new();
    for i in 0..n {
        t.insert(&filter(i, wildcard_heavy), sub(i));
    }
    t
}

fn publish_nonmatching(c: &mut Criterion) {
    let mut g = c.benchmark_group("tree_publish_nonmatching");
    for heavy in [false, true] {
        for n in SIZES {
            let mut t = tree(n, heavy);
            let mut out = Vec::with_capacity(16);
            let name = if heavy { "wildcard_heavy" } else { "exact" };
            // Shares the first levels with the filters but matches none of them.
            g.bench_function(BenchmarkId::new(name, n), |b| {
                b.iter(|| {
                    out.clear();
                    t.matches(black_box("site/7/dev/none/temp"), &|_| true, &mut out);
                    black_box(out.len())
                })
            });
        }
    }
    g.finish();
}

fn publish_matching(c: &mut Criterion) {
    let mut g = c.benchmark_group("tree_publish_matching");
    for n in SIZES {
        let mut t = tree(n, true);
        // Matched by the exact, `+` and `#` filters of device 8.
        for k in 0..8 {
            t.insert("site/8/dev/8/temp", sub(n + k));
        }
        let mut out = Vec::with_capacity(64);
        g.bench_function(BenchmarkId::new("wildcard_heavy", n), |b| {
            b.iter(|| {
                out.clear();
                t.matches(black_box("site/8/dev/8/temp"), &|_| true, &mut out);
                black_box(out.len())
            })
        });
    }
    g.finish();
}

fn insert(c: &mut Criterion) {
    let mut g = c.benchmark_group("tree_insert");
    g.sample_size(10);
    let filters: Vec<String> = (0..10_000).map(|i| filter(i, true)).collect();
    g.bench_function("10k_wildcard_heavy", |b| {
        b.iter(|| {
            let mut t = SubscriptionTree::new();
            for (i, f) in filters.iter().enumerate() {
                t.insert(f, sub(i));
            }
            black_box(t.len())
        })
    });
    g.finish();
}

fn config() -> Criterion {
    // Short runs: the benchmark machine is shared.
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = publish_nonmatching, publish_matching, insert
}
criterion_main!(benches);

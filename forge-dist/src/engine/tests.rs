//! Tests of the engine. Multi-process ones start this test binary again, once
//! per rank, running only [`worker`] (an ignored test that reads its scenario,
//! rank and port from the environment), and bound every run with a deadline.

use super::*;
use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::time::Instant;

const SCENARIO: &str = "FORGE_DIST_TEST_SCENARIO";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn options(rank: usize, world_size: usize, port: u16) -> GroupOptions {
    GroupOptions {
        master_addr: "127.0.0.1".into(),
        master_port: port,
        rank,
        world_size,
        timeout: Duration::from_secs(10),
        interface: Interface::Host("127.0.0.1".into()),
    }
}

/// Runs `scenario` on `world` ranks; kills them all and fails past `limit`.
fn run_ranks(scenario: &str, world: usize, limit: Duration) -> (Vec<Output>, Duration) {
    let port = free_port();
    let exe = std::env::current_exe().unwrap();
    let start = Instant::now();
    let children: Vec<Child> = (0..world)
        .map(|rank| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "engine::tests::worker",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(SCENARIO, scenario)
                .env("RANK", rank.to_string())
                .env("WORLD_SIZE", world.to_string())
                .env("MASTER_PORT", port.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut children: Vec<Option<Child>> = children.into_iter().map(Some).collect();
    let mut outputs: Vec<Option<Output>> = (0..world).map(|_| None).collect();
    while outputs.iter().any(Option::is_none) {
        if start.elapsed() > limit {
            for c in children.iter_mut().flatten() {
                let _ = c.kill();
            }
            panic!("scenario {scenario}: ranks still running after {limit:?}");
        }
        for (i, slot) in children.iter_mut().enumerate() {
            if let Some(c) = slot
                && c.try_wait().unwrap().is_some()
            {
                outputs[i] = Some(slot.take().unwrap().wait_with_output().unwrap());
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (
        outputs.into_iter().map(Option::unwrap).collect(),
        start.elapsed(),
    )
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// One rank of a multi-process scenario (run by [`run_ranks`] only).
#[test]
#[ignore = "a worker started by the multi-process tests"]
fn worker() {
    let scenario = std::env::var(SCENARIO).expect("run by run_ranks");
    let rank: usize = std::env::var("RANK").unwrap().parse().unwrap();
    let world: usize = std::env::var("WORLD_SIZE").unwrap().parse().unwrap();
    let port: u16 = std::env::var("MASTER_PORT").unwrap().parse().unwrap();
    let pg = ProcessGroup::join(&options(rank, world, port)).unwrap();
    match scenario.as_str() {
        "collectives" => collectives(&pg),
        "die" => {
            pg.barrier().unwrap();
            if rank == 1 {
                std::process::exit(3);
            }
            std::thread::sleep(Duration::from_millis(300));
            let mut t = vec![Tensor::ones([4], (Kind::Float, Device::Cpu))];
            let err = pg.allreduce_mean_(&mut t).unwrap_err();
            eprintln!("error: {err}");
            std::process::exit(2);
        }
        other => panic!("unknown scenario {other}"),
    }
}

fn collectives(pg: &ProcessGroup) {
    let r = pg.rank() as f64;
    let w = pg.world_size() as f64;
    // allreduce_mean_ over mixed shapes and dtypes.
    let mut ts = vec![
        Tensor::from_slice(&[1.0f32, 2.0, 3.0]) * (r + 1.0),
        Tensor::ones([2, 2], (Kind::Double, Device::Cpu)) * (10.0 * r),
        Tensor::from_slice(&[4i64, 8]) * (pg.rank() as i64 + 1),
    ];
    pg.allreduce_mean_(&mut ts).unwrap();
    let mean_factor = (1..=pg.world_size()).sum::<usize>() as f64 / w;
    let want = Tensor::from_slice(&[1.0f32, 2.0, 3.0]) * mean_factor;
    assert!(ts[0].allclose(&want, 1e-6, 1e-6, false), "{ts:?}");
    assert_eq!(ts[1].size(), vec![2, 2]);
    let want_d = 10.0 * (0..pg.world_size()).sum::<usize>() as f64 / w;
    assert!((ts[1].double_value(&[1, 1]) - want_d).abs() < 1e-12);
    assert_eq!(ts[2].int64_value(&[1]), (8.0 * mean_factor).floor() as i64);
    // allreduce_sum_ on a non-contiguous flat view.
    let base = Tensor::arange(6, (Kind::Float, Device::Cpu));
    let mut strided = base.slice(0, 0, 6, 2);
    pg.allreduce_sum_(&mut strided).unwrap();
    assert_eq!(
        Vec::<f32>::try_from(&strided).unwrap(),
        vec![0.0, 2.0 * w as f32, 4.0 * w as f32]
    );
    // broadcast_ from the last rank.
    let root = pg.world_size() - 1;
    let mut b = vec![
        Tensor::full([3], r, (Kind::Float, Device::Cpu)),
        Tensor::full([1], r as i64, (Kind::Int64, Device::Cpu)),
    ];
    pg.broadcast_(&mut b, root).unwrap();
    assert_eq!(b[0].double_value(&[2]), root as f64);
    assert_eq!(b[1].int64_value(&[0]), root as i64);
    pg.barrier().unwrap();
    // reduce_scatter: rank r gives [r*10 + i]; slice k of the sum is summed over ranks.
    let n = 2 * pg.world_size() as i64;
    let input = Tensor::arange(n, (Kind::Float, Device::Cpu)) + 10.0 * r;
    let out = pg.reduce_scatter_sum(&input).unwrap();
    let offset_sum = 10.0 * (0..pg.world_size()).sum::<usize>() as f64;
    let k = pg.rank() as i64;
    let want: Vec<f32> = (2 * k..2 * k + 2)
        .map(|i| (i as f64 * w + offset_sum) as f32)
        .collect();
    assert_eq!(Vec::<f32>::try_from(&out).unwrap(), want);
    // all_gather in rank order.
    let g = pg
        .all_gather(&Tensor::from_slice(&[r as f32, r as f32 + 0.5]))
        .unwrap();
    let want: Vec<f32> = (0..pg.world_size())
        .flat_map(|q| [q as f32, q as f32 + 0.5])
        .collect();
    assert_eq!(Vec::<f32>::try_from(&g).unwrap(), want);
    println!("collectives ok on rank {}", pg.rank());
}

#[test]
fn two_ranks_agree_on_every_collective() {
    let (outs, _) = run_ranks("collectives", 2, Duration::from_secs(90));
    for (rank, o) in outs.iter().enumerate() {
        assert!(o.status.success(), "rank {rank}: {}", text(o));
        assert!(
            text(o).contains(&format!("collectives ok on rank {rank}")),
            "{}",
            text(o)
        );
    }
}

#[test]
fn a_dead_rank_is_named_by_the_survivor_in_bounded_time() {
    let (outs, elapsed) = run_ranks("die", 2, Duration::from_secs(60));
    assert_eq!(outs[1].status.code(), Some(3), "{}", text(&outs[1]));
    let survivor = text(&outs[0]);
    assert_eq!(outs[0].status.code(), Some(2), "{survivor}");
    assert!(
        survivor.contains("rank 0 of 2: allreduce failed because rank 1 stopped"),
        "{survivor}"
    );
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
}

/// One process is a world: collectives are identities, and argument
/// errors are reported without touching the group.
#[test]
fn single_rank_group_and_argument_errors() {
    let pg = ProcessGroup::join(&options(0, 1, free_port())).unwrap();
    assert_eq!(format!("{pg:?}"), "ProcessGroup(gloo, rank 0 of 1)");
    let mut ts = vec![Tensor::from_slice(&[1.5f32, 2.5])];
    pg.allreduce_mean_(&mut ts).unwrap();
    assert_eq!(Vec::<f32>::try_from(&ts[0]).unwrap(), vec![1.5, 2.5]);
    let e = pg.broadcast_(&mut ts, 1).unwrap_err().to_string();
    assert_eq!(e, "broadcast: root rank 1 is not below the world size 1");
    let e = pg
        .reduce_scatter_sum(&Tensor::zeros([2, 2], (Kind::Float, Device::Cpu)))
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("takes a flat (1-D) tensor, got shape [2, 2]"),
        "{e}"
    );
    let mut m = Tensor::zeros([2, 2], (Kind::Float, Device::Cpu));
    assert!(pg.allreduce_sum_(&mut m).is_err());
    assert!(pg.all_gather(&m).is_err());
    pg.barrier().unwrap();
}

#[test]
fn single_rank_reduce_scatter_and_all_gather_are_identities() {
    let pg = ProcessGroup::join(&options(0, 1, free_port())).unwrap();
    let out = pg
        .reduce_scatter_sum(&Tensor::from_slice(&[1.0f32, 2.0, 3.0]))
        .unwrap();
    assert_eq!(Vec::<f32>::try_from(&out).unwrap(), vec![1.0, 2.0, 3.0]);
    let g = pg.all_gather(&out).unwrap();
    assert_eq!(Vec::<f32>::try_from(&g).unwrap(), vec![1.0, 2.0, 3.0]);
}

#[test]
fn bad_options_are_refused_before_any_connection() {
    let mut o = options(2, 2, 1);
    assert_eq!(
        ProcessGroup::join(&o).unwrap_err().to_string(),
        "rank 2 is not below the world size 2"
    );
    o.world_size = 0;
    assert_eq!(
        ProcessGroup::join(&o).unwrap_err().to_string(),
        "world size must be at least 1"
    );
    let mut o = options(0, 1, 1);
    o.timeout = Duration::ZERO;
    assert!(
        ProcessGroup::join(&o)
            .unwrap_err()
            .to_string()
            .contains("must be at least 1 ms")
    );
    let mut o = options(0, 1, 1);
    o.master_addr = "a\0b".into();
    assert!(
        ProcessGroup::join(&o)
            .unwrap_err()
            .to_string()
            .contains("contains a NUL byte")
    );
}

#[test]
fn a_join_nobody_answers_times_out_with_the_address() {
    // Rank 1 of 2 connecting to a port where no store listens.
    let mut o = options(1, 2, free_port());
    o.timeout = Duration::from_millis(1500);
    let start = Instant::now();
    let e = ProcessGroup::join(&o).unwrap_err().to_string();
    assert!(
        e.starts_with("rank 1 of 2: joining the process group at 127.0.0.1:"),
        "{e}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn an_unknown_interface_is_a_join_error() {
    let mut o = options(0, 1, free_port());
    o.interface = Interface::Name("no-such-if0".into());
    let e = ProcessGroup::join(&o).unwrap_err().to_string();
    assert!(e.contains("no-such-if0"), "{e}");
}

#[test]
fn buckets_split_by_dtype_and_size() {
    let big = (BUCKET_BYTES / 4) as i64;
    let ts = vec![
        Tensor::zeros([big], (Kind::Float, Device::Cpu)),
        Tensor::zeros([1], (Kind::Double, Device::Cpu)),
        Tensor::zeros([1], (Kind::Float, Device::Cpu)),
        Tensor::zeros([2], (Kind::Double, Device::Cpu)),
    ];
    assert_eq!(buckets(&ts), vec![vec![0], vec![2], vec![1, 3]]);
    assert!(buckets(&[]).is_empty());
}

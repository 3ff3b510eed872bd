use gradspec::cnn::{Mode, Net, Params, Workspace, net::DropoutKey};
use rand::{Rng, SeedableRng};
fn main() {
    // f64 whole-net gradient check
    let n = 4;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let x: Vec<f64> = (0..n * 784).map(|_| rng.random_range(-1.0..2.5)).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i * 3 % 10) as u8).collect();
    let mut net = Net::<f64>::new(1);
    let mut ws = Workspace::new(n);
    ws.load(&x, &labels);
    let mode = Mode::Train {
        dropout: Some(DropoutKey { seed: 3, step: 0 }),
    };
    let out = net.forward(&mut ws, mode);
    let mut g = Params::zeros();
    net.backward(&mut ws, &mut g);
    println!("loss {}", out.loss);
    let names: Vec<_> = g.tensors().iter().map(|t| t.name).collect();
    let gt: Vec<Vec<f64>> = g.tensors().iter().map(|t| t.data.to_vec()).collect();
    for (ti, name) in names.iter().enumerate() {
        for &j in &[0usize, 3, 7] {
            if j >= gt[ti].len() {
                continue;
            }
            let h = 1e-6;
            let mut f = |d: f64| {
                let mut n2 = net.clone();
                n2.params.tensors_mut()[ti].data[j] += d;
                n2.forward(&mut ws, mode).loss
            };
            let num = (f(h) - f(-h)) / (2.0 * h);
            let a = gt[ti][j];
            let ok = (a - num).abs() <= 1e-6 + 1e-4 * num.abs();
            println!(
                "{name}[{j}] analytic {a:.9e} numeric {num:.9e} {}",
                if ok { "ok" } else { "MISMATCH" }
            );
        }
    }
    // f32 speed
    let b = 128;
    let x: Vec<f32> = (0..b * 784).map(|_| rng.random_range(-0.4..2.8)).collect();
    let labels: Vec<u8> = (0..b).map(|i| (i % 10) as u8).collect();
    let mut net = Net::<f32>::new(1);
    let mut ws = Workspace::new(b);
    let mut g = Params::zeros();
    ws.load(&x, &labels);
    for step in 0..3 {
        net.forward(
            &mut ws,
            Mode::Train {
                dropout: Some(DropoutKey { seed: 1, step }),
            },
        );
        net.backward(&mut ws, &mut g);
    }
    let t = std::time::Instant::now();
    let iters = 20;
    for step in 0..iters {
        net.forward(
            &mut ws,
            Mode::Train {
                dropout: Some(DropoutKey { seed: 1, step }),
            },
        );
        net.backward(&mut ws, &mut g);
    }
    let dt = t.elapsed().as_secs_f64();
    println!("train step: {:.0} img/s", (iters * b as u64) as f64 / dt);
    let t = std::time::Instant::now();
    for _ in 0..iters {
        net.forward(&mut ws, Mode::Eval);
    }
    println!(
        "eval: {:.0} img/s",
        (iters * b as u64) as f64 / t.elapsed().as_secs_f64()
    );
}

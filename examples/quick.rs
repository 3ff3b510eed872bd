use gradspec::cnn::{Mode, Net, Params, Workspace, net::DropoutKey};
use rand::{Rng, SeedableRng};
fn main() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
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
    let iters = 60;
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

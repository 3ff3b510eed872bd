//! The book's WebAssembly module.
//!
//! Every number the book's pages show live is computed here, by the library's own functions:
//! Part 1's labelled equations ([`gradspec::backprop::explain::label_blocks`], which calls the
//! functions that the spec's labels cite), Part 1's loss curves, and Part 2's preprocessing
//! ([`gradspec::data::digit`]) and network ([`gradspec::cnn::Net`], in eval mode, on the
//! portable code path: there is no AVX-512 in WebAssembly). The pages' JavaScript only copies
//! numbers in and out.
//!
//! The ABI is deliberately small and needs no generated glue: the page allocates a buffer
//! with [`buf_alloc`], writes its input there, calls an export, and reads the answer, one JSON
//! text, from [`out_ptr`]/[`out_len`]. Every export returns 0 on success and 1 when the answer
//! is `{"error": "…"}`.
use gradspec::backprop::explain::label_blocks;
use gradspec::backprop::sweep::{DEFAULT_LRS, sweep_curves};
use gradspec::backprop::train::train_checked;
use gradspec::backprop::{State, Weights};
use gradspec::cnn::{LayerMap, Mode, Net, Workspace, safetensors_io};
use gradspec::data::digit::{FIELD, Gray, gray_from_rgba, preprocess};
use gradspec::data::normalize_into;
use serde_json::{Value, json};
use std::cell::RefCell;

thread_local! {
    /// The last answer, read by the page through [`out_ptr`] and [`out_len`].
    static OUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// The network loaded by [`net_load`].
    static NET: RefCell<Option<Net<f32>>> = const { RefCell::new(None) };
}

/// The most iterations the Part 1 page may ask for.
const MAX_ITERATIONS: u32 = 10_000;

/// Keeps `v` as the answer; 0 for a success, 1 for an error.
fn answer(v: Result<Value, String>) -> i32 {
    let (code, v) = match v {
        Ok(v) => (0, v),
        Err(e) => (1, json!({ "error": e })),
    };
    OUT.with(|o| *o.borrow_mut() = v.to_string().into_bytes());
    code
}

/// A buffer of `len` bytes that the page fills; it stays allocated until [`buf_free`].
#[unsafe(no_mangle)]
pub extern "C" fn buf_alloc(len: usize) -> *mut u8 {
    let mut v = vec![0u8; len].into_boxed_slice();
    let p = v.as_mut_ptr();
    std::mem::forget(v);
    p
}

/// Frees a buffer from [`buf_alloc`].
///
/// # Safety
/// `ptr` and `len` must come from one call of [`buf_alloc`], and the buffer must not be used
/// again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn buf_free(ptr: *mut u8, len: usize) {
    // SAFETY: the caller passes a pointer and length that buf_alloc leaked as a boxed slice.
    drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, len)) });
}

/// The address of the last answer's UTF-8 JSON text.
#[unsafe(no_mangle)]
pub extern "C" fn out_ptr() -> *const u8 {
    OUT.with(|o| o.borrow().as_ptr())
}

/// The length in bytes of the last answer.
#[unsafe(no_mangle)]
pub extern "C" fn out_len() -> usize {
    OUT.with(|o| o.borrow().len())
}

/// The bytes of a buffer the page filled.
///
/// # Safety
/// `ptr..ptr+len` must be a buffer from [`buf_alloc`].
unsafe fn input<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if len == 0 {
        return &[];
    }
    // SAFETY: the caller guarantees the range lies in a live buffer from buf_alloc.
    unsafe { std::slice::from_raw_parts(ptr, len) }
}

/// Part 1 at one setting: row `iteration` of training from inputs `i1, i2`, targets `t1, t2`
/// and weights `w1 … w8` at learning rate `lr`. The answer holds every labelled equation's
/// block as `gradspec backprop explain` prints it (`blocks`: label → text), the row's
/// E_total, and the loss curve over `max(iterations, iteration + 1)` rows (`loss`).
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn bp_numbers(
    i1: f64,
    i2: f64,
    t1: f64,
    t2: f64,
    w1: f64,
    w2: f64,
    w3: f64,
    w4: f64,
    w5: f64,
    w6: f64,
    w7: f64,
    w8: f64,
    lr: f64,
    iteration: u32,
    iterations: u32,
) -> i32 {
    answer((|| {
        if iteration >= MAX_ITERATIONS || iterations > MAX_ITERATIONS {
            return Err(format!("iteration: at most {MAX_ITERATIONS}"));
        }
        if !(lr.is_finite() && lr > 0.0) {
            return Err(format!("learning rate {lr}: must be finite and > 0"));
        }
        let state = State {
            i1,
            i2,
            t1,
            t2,
            w: Weights::from_array([w1, w2, w3, w4, w5, w6, w7, w8]),
        };
        let rows = (iteration as usize + 1).max(iterations as usize);
        let rows = train_checked(state, lr, rows).map_err(|e| e.to_string())?;
        let row = &rows[iteration as usize];
        let blocks = label_blocks(row, lr).map_err(|e| e.to_string())?;
        let blocks: serde_json::Map<String, Value> = blocks
            .into_iter()
            .map(|(l, b)| (l, Value::String(b)))
            .collect();
        let loss: Vec<f64> = rows.iter().map(|r| r.fwd.e_total).collect();
        Ok(json!({
            "iteration": iteration,
            "lr": lr,
            "e_total": row.fwd.e_total,
            "weights": row.state.w.to_array(),
            "blocks": blocks,
            "loss": loss,
        }))
    })())
}

/// The source's six learning rates from the spreadsheet's start, `iterations` rows each:
/// `{"lrs": [...], "loss": [[...], ...]}`.
#[unsafe(no_mangle)]
pub extern "C" fn bp_sweep(iterations: u32) -> i32 {
    answer((|| {
        if iterations == 0 || iterations > MAX_ITERATIONS {
            return Err(format!("iterations: 1 to {MAX_ITERATIONS}"));
        }
        let c = sweep_curves(State::spreadsheet(), &DEFAULT_LRS, iterations as usize)
            .map_err(|e| e.to_string())?;
        Ok(json!({ "lrs": c.lrs, "loss": c.e_total }))
    })())
}

/// Loads the trained weights: the bytes of a `.safetensors` file at `ptr..ptr+len`.
///
/// # Safety
/// `ptr..ptr+len` must be a buffer from [`buf_alloc`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn net_load(ptr: *const u8, len: usize) -> i32 {
    // SAFETY: forwarded from this function's own contract.
    let bytes = unsafe { input(ptr, len) };
    answer(
        safetensors_io::from_bytes(bytes, "the book's weights")
            .map(|net| {
                NET.with(|n| *n.borrow_mut() = Some(net));
                json!({ "loaded": len })
            })
            .map_err(|e| e.to_string()),
    )
}

/// Scales each map of `m` to bytes 0–255 (its own minimum to maximum; a constant map is
/// mid-grey), for drawing.
fn map_bytes(m: &LayerMap<f32>) -> Value {
    let plane = m.height * m.width;
    let mut bytes = Vec::with_capacity(m.values.len());
    for ch in m.values.chunks(plane.max(1)) {
        let lo = ch.iter().copied().fold(f32::INFINITY, f32::min);
        let hi = ch.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let span = hi - lo;
        bytes.extend(ch.iter().map(|&v| {
            if span > 0.0 && span.is_finite() {
                ((v - lo) / span * 255.0).round() as u8
            } else {
                128
            }
        }));
    }
    json!({
        "name": m.name,
        "channels": m.channels,
        "height": m.height,
        "width": m.width,
        "bytes": bytes,
    })
}

/// Reads the digit drawn on the page's canvas: `width × height` RGBA pixels at `ptr`. The
/// answer holds the prediction, the ten probabilities, the preprocessed 28×28 image (bytes,
/// white on black) and the feature maps of the first layers (bytes, per map min-to-max).
///
/// # Safety
/// `ptr..ptr + 4·width·height` must be a buffer from [`buf_alloc`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn digit_predict(ptr: *const u8, width: usize, height: usize) -> i32 {
    let Some(len) = width.checked_mul(height).and_then(|p| p.checked_mul(4)) else {
        return answer(Err(format!("canvas {width}×{height}: too large")));
    };
    // SAFETY: forwarded from this function's own contract.
    let rgba = unsafe { input(ptr, len) };
    answer(NET.with(|n| {
        let mut n = n.borrow_mut();
        let net = n
            .as_mut()
            .ok_or_else(|| "no weights loaded (call net_load first)".to_string())?;
        let gray = gray_from_rgba(rgba, width, height).map_err(|e| e.to_string())?;
        let img = preprocess(Gray {
            width,
            height,
            pixels: &gray,
        })
        .map_err(|e| e.to_string())?;
        let mut x = vec![0f32; FIELD * FIELD];
        normalize_into(&img, &mut x);
        let mut ws = Workspace::<f32>::new(1);
        ws.load(&x, &[0]);
        net.forward(&mut ws, Mode::Eval);
        let logp = ws.log_probs();
        let probs: Vec<f64> = logp.iter().map(|&l| f64::from(l).exp()).collect();
        let maps: Vec<Value> = ws.activations(0)[1..5].iter().map(map_bytes).collect();
        Ok(json!({
            "prediction": ws.predictions()[0],
            "probs": probs,
            "image": img.to_vec(),
            "maps": maps,
        }))
    }))
}

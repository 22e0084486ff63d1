//! `run` and `bench`: bind a model, feed it an input and report outputs or timings.

use mxnet::dtype::DType;
use mxnet::executor::pool::pool;
use mxnet::format::npy::{read_npy, write_npy};
use mxnet::format::params::load_params;
use mxnet::predictor::{Predictor, PredictorConfig};
use mxnet::{Error, Result, Tensor};
use std::time::Instant;

/// Options shared by `run` and `bench`.
struct ModelArgs {
    symbol: String,
    params: String,
    input_name: String,
    input: Option<String>,
    shape: Option<Vec<usize>>,
    output: Option<String>,
    compare: Option<(String, String)>,
    runs: usize,
    warmup: usize,
    profile: bool,
}

fn parse_args(args: &[String]) -> Result<ModelArgs> {
    let mut positional = Vec::new();
    let mut m = ModelArgs {
        symbol: String::new(),
        params: String::new(),
        input_name: "data".into(),
        input: None,
        shape: None,
        output: None,
        compare: None,
        runs: 20,
        warmup: 3,
        profile: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next().cloned().ok_or_else(|| {
                Error::invalid(format!("{name} needs a value; see mxnet-int8 --help"))
            })
        };
        match a.as_str() {
            "--input" => m.input = Some(value("--input")?),
            "--input-name" => m.input_name = value("--input-name")?,
            "--output" => m.output = Some(value("--output")?),
            "--shape" => m.shape = Some(parse_shape(&value("--shape")?)?),
            "--compare" => {
                let s = value("--compare")?;
                let p = value("--compare")?;
                m.compare = Some((s, p));
            }
            "--runs" => m.runs = parse_count(&value("--runs")?, "--runs")?,
            "--warmup" => m.warmup = parse_count(&value("--warmup")?, "--warmup")?,
            "--profile" => m.profile = true,
            flag if flag.starts_with("--") => {
                return Err(Error::invalid(format!("unknown option {flag}")))
            }
            _ => positional.push(a.clone()),
        }
    }
    let [symbol, params] = positional.as_slice() else {
        return Err(Error::invalid(
            "expected MODEL-symbol.json and MODEL-0000.params",
        ));
    };
    m.symbol = symbol.clone();
    m.params = params.clone();
    if m.input.is_some() && m.shape.is_some() {
        return Err(Error::invalid("give either --input or --shape, not both"));
    }
    if m.runs == 0 {
        return Err(Error::invalid("--runs must be at least 1"));
    }
    if m.input.is_none() && m.shape.is_none() {
        return Err(Error::invalid(
            "give the input as --input x.npy or its shape as --shape 1,3,224,224",
        ));
    }
    Ok(m)
}

fn parse_count(v: &str, name: &str) -> Result<usize> {
    v.parse()
        .map_err(|_| Error::invalid(format!("{name} expects a non-negative integer, got {v:?}")))
}

fn parse_shape(v: &str) -> Result<Vec<usize>> {
    v.split(',')
        .map(|d| d.trim().parse::<usize>().ok().filter(|&d| d > 0))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| {
            Error::invalid(format!(
                "invalid shape {v:?}: expected positive integers such as 1,3,224,224"
            ))
        })
}

fn read_file(path: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_string(),
        source,
    })
}

/// Deterministic standard-normal-like values (sum of uniforms), so runs repeat.
fn synthetic_input(shape: &[usize]) -> Result<Tensor> {
    // Allocate through the tensor so an absurd shape is an error, not an abort.
    let mut tensor = Tensor::zeros(mxnet::DType::F32, shape)?;
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    for v in tensor.f32s_mut()? {
        *v = (0..4).map(|_| next()).sum::<f32>() - 2.0;
    }
    Ok(tensor)
}

/// Reads the input from a `.npy` file, or from an NDArray list file (the
/// array named like the input, else the first one).
fn read_input_file(path: &str, input_name: &str) -> Result<Tensor> {
    let bytes = read_file(path)?;
    if bytes.starts_with(b"\x93NUMPY") {
        return read_npy(&bytes);
    }
    let list = load_params(&bytes)?;
    let index = list.names.iter().position(|n| n == input_name).unwrap_or(0);
    list.arrays
        .into_iter()
        .nth(index)
        .flatten()
        .ok_or_else(|| Error::invalid(format!("{path} holds no input array")))
}

fn load_input(m: &ModelArgs) -> Result<Tensor> {
    match (&m.input, &m.shape) {
        (Some(path), _) => read_input_file(path, &m.input_name),
        (None, Some(shape)) => synthetic_input(shape),
        (None, None) => unreachable!("parse_args requires one of them"),
    }
}

fn bind(symbol: &str, params: &str, input_name: &str, input: &Tensor) -> Result<Predictor> {
    let (json, params) = read_model(symbol, params)?;
    create(&json, &params, input_name, input)
}

/// Reads the symbol JSON text and the parameter file's bytes.
fn read_model(symbol: &str, params: &str) -> Result<(String, Vec<u8>)> {
    let json = String::from_utf8(read_file(symbol)?)
        .map_err(|_| Error::invalid(format!("{symbol} is not UTF-8 text")))?;
    Ok((json, read_file(params)?))
}

/// Creates a predictor from files already in memory, as `MXPredCreate`
/// does, and sets its input.
fn create(json: &str, params: &[u8], input_name: &str, input: &Tensor) -> Result<Predictor> {
    let mut dtypes = Vec::new();
    if input.dtype() != DType::F32 {
        dtypes.push((input_name.to_string(), input.dtype()));
    }
    let mut p = Predictor::create(&PredictorConfig {
        symbol_json: json,
        params,
        input_shapes: vec![(input_name.to_string(), input.shape().to_vec())],
        input_dtypes: dtypes,
        output_keys: Vec::new(),
    })?;
    p.executor.set_argument(input_name, input.bytes())?;
    Ok(p)
}

/// Relative L2 distance `|a - b| / |b|`.
pub fn relative_l2(a: &[f32], b: &[f32]) -> f64 {
    let (mut num, mut den) = (0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        num += (x as f64 - y as f64).powi(2);
        den += (y as f64).powi(2);
    }
    (num / den.max(f64::MIN_POSITIVE)).sqrt()
}

/// Per-pixel argmax over the channel axis of an NCHW score map.
fn class_map(t: &Tensor) -> Option<Vec<usize>> {
    let &[n, c, h, w] = t.shape() else {
        return None;
    };
    let v = t.to_f32_vec();
    let plane = h * w;
    let mut map = Vec::with_capacity(n * plane);
    for b in 0..n {
        for p in 0..plane {
            let score = |k: usize| v[(b * c + k) * plane + p];
            // The first of equal scores wins, as numpy's argmax does.
            let best = (0..c).fold(0, |b, k| if score(k) > score(b) { k } else { b });
            map.push(best);
        }
    }
    Some(map)
}

fn print_summary(t: &Tensor) {
    let v = t.to_f32_vec();
    let (lo, hi) = v
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        });
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len().max(1) as f64;
    println!("  values: min {lo:.4}, max {hi:.4}, mean {mean:.4}");
    if let Some(map) = class_map(t) {
        let mut counts = vec![0usize; t.shape()[1]];
        for &k in &map {
            counts[k] += 1;
        }
        println!("  pixels per class (argmax over channels): {counts:?}");
    }
    print_top5(t);
}

fn print_top5(t: &Tensor) {
    let v = t.to_f32_vec();
    let classes = *t.shape().last().unwrap_or(&0);
    if t.ndim() != 2 || classes < 2 {
        return;
    }
    for (b, row) in v.chunks(classes).enumerate() {
        let mut idx: Vec<usize> = (0..classes).collect();
        idx.sort_by(|&i, &j| row[j].total_cmp(&row[i]));
        let top: Vec<String> = idx
            .iter()
            .take(5)
            .map(|&i| format!("{i} ({:.4})", row[i]))
            .collect();
        println!("  image {b}: top-5 classes {}", top.join(", "));
    }
}

/// `mxnet-int8 run`: one forward pass, outputs and timing.
pub fn run(args: &[String]) -> Result<()> {
    let m = parse_args(args)?;
    let input = load_input(&m)?;
    let t0 = Instant::now();
    let mut p = bind(&m.symbol, &m.params, &m.input_name, &input)?;
    let bind_time = t0.elapsed();
    let t1 = Instant::now();
    p.executor.forward()?;
    let run_time = t1.elapsed();
    println!(
        "model {} ({} operators), input {:?} {}",
        m.symbol,
        p.executor.num_steps(),
        input.shape(),
        input.dtype()
    );
    for i in 0..p.executor.num_outputs() {
        let t = p.executor.output(i)?;
        println!(
            "output {i} {}: shape {:?} {}",
            p.executor.output_names()[i],
            t.shape(),
            t.dtype()
        );
        print_summary(t);
    }
    println!(
        "bind {:.1} ms, forward {:.1} ms, {} threads",
        bind_time.as_secs_f64() * 1e3,
        run_time.as_secs_f64() * 1e3,
        pool().current_num_threads()
    );
    if let Some((sym, params)) = &m.compare {
        let mut r = bind(sym, params, &m.input_name, &input)?;
        r.executor.forward()?;
        for i in 0..p.executor.num_outputs().min(r.executor.num_outputs()) {
            let (ours, reference) = (p.executor.output(i)?, r.executor.output(i)?);
            if ours.shape() != reference.shape() {
                return Err(Error::invalid(format!(
                    "cannot compare output {i}: shape {:?} differs from {:?} of {sym}",
                    ours.shape(),
                    reference.shape()
                )));
            }
            let distance = relative_l2(&ours.to_f32_vec(), &reference.to_f32_vec());
            println!("output {i}: relative L2 distance to {sym}: {distance:.4}");
            if let (Some(a), Some(b)) = (class_map(ours), class_map(reference)) {
                let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
                println!(
                    "output {i}: same argmax class as {sym} on {same} of {} pixels ({:.1} %)",
                    a.len(),
                    100.0 * same as f64 / a.len().max(1) as f64
                );
            }
        }
    }
    if let Some(path) = &m.output {
        let bytes = write_npy(p.executor.output(0)?)?;
        std::fs::write(path, bytes).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        println!("wrote output 0 to {path}");
    }
    Ok(())
}

/// `mxnet-int8 bench`: warm-up runs, then timed runs; prints median latency and throughput.
pub fn bench(args: &[String]) -> Result<()> {
    let m = parse_args(args)?;
    let input = load_input(&m)?;
    // Reading the files is timed apart: MXPredCreate takes them in memory.
    let t_read = Instant::now();
    let (json, params) = read_model(&m.symbol, &m.params)?;
    let read = t_read.elapsed();
    let t0 = Instant::now();
    let mut p = create(&json, &params, &m.input_name, &input)?;
    let bound = t0.elapsed();
    p.executor.forward()?;
    let first = t0.elapsed();
    for _ in 0..m.warmup {
        p.executor.forward()?;
    }
    let mut times = Vec::with_capacity(m.runs.max(1));
    for _ in 0..m.runs.max(1) {
        let t = Instant::now();
        p.executor.forward()?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let batch = input.shape().first().copied().unwrap_or(1);
    println!(
        "{}: batch {batch}, {} threads, files read in {:.1} ms, bind + first forward {:.1} ms (bind {:.1} ms), median {:.3} ms over {} runs (min {:.3} ms), {:.1} images/s",
        m.symbol,
        pool().current_num_threads(),
        read.as_secs_f64() * 1e3,
        first.as_secs_f64() * 1e3,
        bound.as_secs_f64() * 1e3,
        median * 1e3,
        times.len(),
        times[0] * 1e3,
        batch as f64 / median
    );
    if m.profile {
        print_profile(&mut p, m.runs.max(1))?;
    }
    Ok(())
}

/// Runs `runs` more forward passes timing each step, then prints the steps
/// that take the most time, with their share and multiply-add rate.
fn print_profile(p: &mut Predictor, runs: usize) -> Result<()> {
    let steps = p.executor.num_steps();
    let mut total = vec![0f64; steps];
    for _ in 0..runs {
        for (sum, t) in total.iter_mut().zip(p.executor.forward_timed()?) {
            *sum += t.as_secs_f64();
        }
    }
    let all = total.iter().sum::<f64>().max(f64::MIN_POSITIVE);

    let mut by_op: Vec<(String, f64)> = Vec::new();
    for (i, &t) in total.iter().enumerate() {
        let Some(op) = p.executor.step_summary(i).map(|s| s.op) else {
            continue;
        };
        match by_op.iter_mut().find(|(o, _)| o == op) {
            Some((_, sum)) => *sum += t,
            None => by_op.push((op.to_string(), t)),
        }
    }
    by_op.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!("operators by mean time over {runs} runs:");
    for (op, t) in &by_op {
        let mean = t / runs as f64;
        println!("{:>9.3} {:>5.1}%  {op}", mean * 1e3, 100.0 * t / all);
    }

    let mut order: Vec<usize> = (0..steps).collect();
    order.sort_by(|&a, &b| total[b].total_cmp(&total[a]));
    let total_ms = all * 1e3 / runs as f64;
    println!("steps by mean time (all steps: {total_ms:.3} ms):");
    println!(
        "{:>9} {:>6} {:>8}  node (op) input [weight] -> output",
        "ms", "share", "GMAC/s"
    );
    for &i in &order {
        let Some(s) = p.executor.step_summary(i) else {
            continue;
        };
        let macs = s.macs;
        let mean = total[i] / runs as f64;
        let rate = if macs > 0 && mean > 0.0 {
            format!("{:.1}", macs as f64 / mean / 1e9)
        } else {
            "-".into()
        };
        let share = 100.0 * total[i] / all;
        let dims = |d: &[usize]| {
            d.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join("x")
        };
        let weight = if s.weight.is_empty() {
            String::new()
        } else {
            format!(" [{}]", dims(s.weight))
        };
        println!(
            "{:>9.3} {share:>5.1}% {rate:>8}  {} ({}) {}{weight} -> {}",
            mean * 1e3,
            s.name,
            s.op,
            dims(s.input),
            dims(s.output)
        );
    }
    Ok(())
}

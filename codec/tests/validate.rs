//! Model validation at load (issue 21): non-finite constants, absurd shapes and
//! wrong input/output ranks are refused with one line naming the tensor, in
//! every mode; panics of tract are errors naming the model, not an abort.
mod common;

use std::path::{Path, PathBuf};

use common::{int, ints, model_bytes, node, tensor, tiny_sr};
use nawqsr_codec::model::reference::Fp32Reference;
use nawqsr_codec::model::validate::{MAX_CHANNELS, PANIC_MARK, no_panic};
use nawqsr_codec::runtime::{Codec, CodecConfig, Mode};
use prost::Message;
use tract_onnx::pb;

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// `tiny_sr` with one value of initializer `name` replaced.
fn with_value(name: &str, i: usize, v: f32) -> Vec<u8> {
    let mut m = pb::ModelProto::decode(&tiny_sr(1)[..]).unwrap();
    let g = m.graph.as_mut().unwrap();
    let t = g.initializer.iter_mut().find(|t| t.name == name).unwrap();
    t.float_data[i] = v;
    m.encode_to_vec()
}

fn errors_in_every_mode(path: &Path) -> Vec<String> {
    let mut out = vec![nawqsr_codec::model::import(path).unwrap_err().to_string()];
    for mode in [Mode::Int8, Mode::A16w8, Mode::Fp32] {
        let e = Codec::new(&CodecConfig {
            model: Some(path.to_owned()),
            mode,
            threads: 1,
            ..Default::default()
        })
        .err()
        .unwrap_or_else(|| panic!("mode {} accepted {}", mode.name(), path.display()));
        out.push(e.to_string());
    }
    out
}

#[test]
fn a_nan_weight_is_refused_in_every_mode_naming_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "nan.onnx", &with_value("w2", 17, f32::NAN));
    for e in errors_in_every_mode(&p) {
        assert!(
            e.contains("nan.onnx")
                && e.contains("initializer 'w2'")
                && e.contains("value 17 is NaN"),
            "{e}"
        );
        assert_eq!(e.lines().count(), 1, "one line: {e}");
    }
    let p = write(dir.path(), "inf.onnx", &with_value("b1", 0, f32::INFINITY));
    for e in errors_in_every_mode(&p) {
        assert!(
            e.contains("initializer 'b1'") && e.contains("value 0 is inf"),
            "{e}"
        );
    }
    // The unmodified model loads (the checks do not refuse real weights).
    let ok = write(dir.path(), "ok.onnx", &tiny_sr(1));
    nawqsr_codec::model::import(&ok).unwrap();
    Fp32Reference::load(&ok).unwrap();
}

#[test]
fn huge_channel_counts_and_kernels_are_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let conv = |out_c: i64, k: i64| {
        // Dims only (no data): the limits must refuse it before the data is read.
        let mut w = tensor("w", &[out_c, 3, k, k], &[]);
        w.float_data.clear();
        model_bytes(
            vec![
                node(
                    "Conv",
                    &["lr", "w"],
                    &["c"],
                    vec![ints("pads", &[k / 2, k / 2, k / 2, k / 2])],
                ),
                node(
                    "DepthToSpace",
                    &["c"],
                    &["sr"],
                    vec![int("blocksize", 2), common::string("mode", "CRD")],
                ),
            ],
            vec![w],
            3,
        )
    };
    let p = write(dir.path(), "wide.onnx", &conv(1 << 20, 3));
    for e in errors_in_every_mode(&p) {
        assert!(e.contains("wide.onnx") && e.contains("'w'"), "{e}");
        assert!(
            e.contains(&format!("expected 1..={MAX_CHANNELS}")) || e.contains("more than"),
            "{e}"
        );
    }
    let p = write(dir.path(), "kernel.onnx", &conv(12, 101));
    for e in errors_in_every_mode(&p) {
        assert!(e.contains("kernel.onnx") && e.contains("'w'"), "{e}");
    }
    // A pads attribute past the limits (would allocate a huge padded band).
    let mut m = pb::ModelProto::decode(&tiny_sr(1)[..]).unwrap();
    m.graph.as_mut().unwrap().node[0].attribute[0] = ints("pads", &[1 << 30, 1, 1, 1]);
    let p = write(dir.path(), "pads.onnx", &m.encode_to_vec());
    for e in errors_in_every_mode(&p) {
        assert!(
            e.contains("attribute 'pads'") && e.contains("expected 0..="),
            "{e}"
        );
    }
}

#[test]
fn wrong_input_or_output_ranks_and_names_are_refused_naming_the_tensor() {
    use pb::tensor_shape_proto::{Dimension, dimension::Value};
    let dir = tempfile::tempdir().unwrap();
    let edit = |f: &dyn Fn(&mut pb::GraphProto)| {
        let mut m = pb::ModelProto::decode(&tiny_sr(1)[..]).unwrap();
        f(m.graph.as_mut().unwrap());
        m.encode_to_vec()
    };
    // The only type value tract's protobuf knows is a tensor type.
    let shape = |v: &mut pb::ValueInfoProto| {
        let pb::type_proto::Value::TensorType(t) =
            v.r#type.as_mut().unwrap().value.as_mut().unwrap();
        t.shape.as_mut().unwrap().dim.clone()
    };
    let set = |v: &mut pb::ValueInfoProto, dims: Vec<Dimension>| {
        let pb::type_proto::Value::TensorType(t) =
            v.r#type.as_mut().unwrap().value.as_mut().unwrap();
        t.shape.as_mut().unwrap().dim = dims;
    };
    let p = write(
        dir.path(),
        "rank3.onnx",
        &edit(&|g| {
            let mut d = shape(&mut g.input[0]);
            d.remove(0);
            set(&mut g.input[0], d);
        }),
    );
    for e in errors_in_every_mode(&p) {
        assert!(e.contains("input 'lr' has rank 3 (expected 4"), "{e}");
    }
    let p = write(
        dir.path(),
        "gray.onnx",
        &edit(&|g| {
            let mut d = shape(&mut g.output[0]);
            d[1] = Dimension {
                value: Some(Value::DimValue(1)),
                ..Default::default()
            };
            set(&mut g.output[0], d);
        }),
    );
    for e in errors_in_every_mode(&p) {
        assert!(e.contains("output 'sr' has 1 channels (expected 3"), "{e}");
    }
    let p = write(
        dir.path(),
        "dangling.onnx",
        &edit(&|g| g.output[0].name = "hr".into()),
    );
    for e in errors_in_every_mode(&p) {
        assert!(e.contains("output 'hr' is produced by no node"), "{e}");
    }
}

#[test]
fn a_panic_behind_the_boundary_is_an_error_naming_the_model() {
    let e = no_panic::<()>(Path::new("/models/x.onnx"), "running tract", || {
        let v: Vec<u8> = Vec::new();
        let _ = v.chunks(0).count(); // the RFDN MaxPool panic: chunk size must be non-zero
        Ok(())
    })
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("model /models/x.onnx: running tract: ")
            && e.contains(PANIC_MARK)
            && e.contains("chunk size"),
        "{e}"
    );
}

#[test]
fn a_maxpool_that_empties_the_probe_frame_is_an_error_not_an_abort() {
    // RFDN's ESA block: a stride-2 conv then a 7×7 stride-3 max pool, which on a
    // small frame leaves nothing (tract panics in maxpool.rs on such shapes).
    let dir = tempfile::tempdir().unwrap();
    let w: Vec<f32> = (0..3 * 3 * 9).map(|i| (i % 7) as f32 / 50.0).collect();
    let bytes = model_bytes(
        vec![
            node(
                "Conv",
                &["lr", "w"],
                &["c"],
                vec![ints("strides", &[2, 2]), ints("kernel_shape", &[3, 3])],
            ),
            node(
                "MaxPool",
                &["c"],
                &["sr"],
                vec![ints("kernel_shape", &[7, 7]), ints("strides", &[3, 3])],
            ),
        ],
        vec![tensor("w", &[3, 3, 3, 3], &w)],
        3,
    );
    let p = write(dir.path(), "esa.onnx", &bytes);
    let e = Fp32Reference::load(&p)
        .err()
        .expect("not an SR model")
        .to_string();
    assert!(e.contains("esa.onnx"), "{e}");
    let e = Codec::new(&CodecConfig {
        model: Some(p),
        mode: Mode::Fp32,
        ..Default::default()
    })
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("esa.onnx") && e.lines().count() == 1, "{e}");
}

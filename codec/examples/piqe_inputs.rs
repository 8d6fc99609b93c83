//! Writes the derived images whose PIQE `tools/piqe_reference.py` measures with
//! pypiqe: for every Set5 and Set14 HR image, its ×4 LR (the SR protocol's
//! MATLAB bicubic downscale) and the bicubic ×4 upscale of that LR, and for
//! Set5 the bundled nawq_x4's output (INT8, DRE everywhere, so no calibration
//! set is needed). `codec/tests/piqe.rs` rebuilds the same images in process
//! (`derived`) and compares its scores with the stored ones.
//!
//! cargo run --release -p nawqsr-codec --example piqe_inputs -- ../shared OUTDIR
use std::path::PathBuf;

use nawqsr_codec::engine::{Engine, Plan, Tensor};
use nawqsr_codec::eval::Sample;
use nawqsr_codec::kernels::CpuLevel;
use nawqsr_codec::metrics::{list_images, load_rgb, upscale_bicubic};
use nawqsr_codec::model;
use nawqsr_codec::quant::Bits;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [shared, out] = args.as_slice() else {
        return Err("usage: piqe_inputs SHARED_DIR OUT_DIR".into());
    };
    let (shared, out) = (PathBuf::from(shared), PathBuf::from(out));
    std::fs::create_dir_all(&out)?;
    let engine = Engine::new(
        model::import_bytes(&model::bundled::load(4)?)?,
        CpuLevel::detect(),
        1,
    );
    let plan = Plan::all_dre(&engine.graph, Bits::B8);
    for set in ["Set5", "Set14"] {
        for p in list_images(&shared.join("datasets").join(set))? {
            let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
            let s = Sample::from_hr(stem.clone(), &load_rgb(&p)?, 4);
            s.lr.save(out.join(format!("{set}_{stem}_lr4.png")))?;
            upscale_bicubic(&s.lr, 4).save(out.join(format!("{set}_{stem}_bicubic4.png")))?;
            if set == "Set5" {
                let sr = engine.run(&plan, &Tensor::from_rgb(&s.lr))?.to_rgb();
                sr.save(out.join(format!("{set}_{stem}_nawq4.png")))?;
            }
        }
    }
    Ok(())
}

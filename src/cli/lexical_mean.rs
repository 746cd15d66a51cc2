//! `detective lexical-mean`: the mean lexical vector of a set of texts, the
//! constant a centred lexical view subtracts (see `encoder::lexical`). The
//! shipped means are those of the shipped default references; this command
//! recomputes them, for example after the default references change.
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::detect::seed;
use crate::encoder::lexical::Lexical;
use crate::encoder::lexical_mean::mean_vector;
use crate::encoder::registry;

#[derive(Debug, Args)]
pub struct LexicalMeanArgs {
    /// Folder of the reference set whose texts are averaged (default: the
    /// shipped default references).
    #[arg(long)]
    pub references: Option<PathBuf>,
    /// Dimensions, one mean file per value.
    #[arg(long, value_delimiter = ',', default_value = "1024,2048,4096")]
    pub dims: Vec<usize>,
    /// Folder the files `char{min}-{max}x{dim}.f32` (little-endian f32) go to.
    #[arg(long, default_value = "src/encoder/lexical_mean")]
    pub out: PathBuf,
}

pub fn run(args: &LexicalMeanArgs) -> anyhow::Result<()> {
    let dir = args.references.clone().unwrap_or_else(seed::default_dir);
    let records = seed::load_texts(&dir)
        .with_context(|| format!("cannot read the references in {}", dir.display()))?;
    anyhow::ensure!(!records.is_empty(), "no texts in {}", dir.display());
    let texts: Vec<&str> = records.iter().map(|r| r.text.as_str()).collect();
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    for &dim in &args.dims {
        anyhow::ensure!(
            (1..=1 << 16).contains(&dim),
            "dimensions must be within 1..=65536, not {dim}"
        );
        let shape = Lexical {
            dim,
            ..Lexical::default()
        };
        let mean = mean_vector(&shape, &texts);
        let bytes: Vec<u8> = mean.iter().flat_map(|x| x.to_le_bytes()).collect();
        let path = args.out.join(format!("{}.f32", shape.tag()));
        std::fs::write(&path, &bytes)
            .with_context(|| format!("cannot write {}", path.display()))?;
        let norm = mean.iter().map(|x| x * x).sum::<f32>().sqrt();
        println!(
            "{}: mean of {} texts, norm {norm:.4}, sha256 {}",
            path.display(),
            texts.len(),
            registry::sha256_file(&path)?
        );
    }
    Ok(())
}

//! `rnnlm download`, `rnnlm prepare` and `rnnlm inspect`.

use super::{Dataset, DownloadArgs, InspectArgs, PrepareArgs};
use anyhow::Context;
use rnnlm::files::corpus::{self, tokfile, FileErrorKind, Header, PrepareOptions, TokFileError, Tokenizer, Unknown};
use rnnlm::files::data;
use std::path::Path;

fn log_to_stderr(line: &str) {
    eprintln!("{line}");
}

pub fn download(data_dir: &Path, args: DownloadArgs) -> anyhow::Result<()> {
    match args.dataset {
        Dataset::Ptb => {
            let dir = args.dir.unwrap_or_else(|| data_dir.join("ptb"));
            let base_url = data::ptb_base_url(args.base_url.as_deref());
            data::download_ptb(&dir, &base_url, log_to_stderr)?;
            out!("the Penn Treebank is in {}", dir.display());
        }
    }
    Ok(())
}

pub fn prepare(data_dir: &Path, args: PrepareArgs) -> anyhow::Result<()> {
    if args.ptb {
        let base_url = data::ptb_base_url(args.base_url.as_deref());
        let dir = match args.out {
            Some(out) => {
                let source = data::ensure_ptb(data_dir, &base_url, log_to_stderr)?;
                data::prepare_ptb(&source, &out)?;
                out
            }
            // Into <data>/ptb, or the cache when the data directory cannot be written; files
            // made from the same sources are reused.
            None => data::prepared_ptb(data_dir, &base_url, log_to_stderr)?,
        };
        print_prepared(&corpus::Prepared::open(&dir)?);
    } else {
        let options = PrepareOptions {
            train: args.train.expect("clap requires --train without --ptb"),
            valid: args.valid,
            test: args.test,
            out: args.out.expect("clap requires --out without --ptb"),
            tokenizer: Tokenizer { level: args.level, lowercase: args.lowercase },
            unknown: if args.unk { Unknown::MapToUnk } else { Unknown::Reject },
            corpus_size: args.corpus_size,
        };
        corpus::prepare(&options)?;
        print_prepared(&corpus::Prepared::open(&options.out)?);
    }
    Ok(())
}

fn print_prepared(prepared: &corpus::Prepared) {
    out!(
        "vocabulary: {} tokens ({}-level) -> {}",
        prepared.vocab.len(),
        prepared.level,
        prepared.dir.join(corpus::VOCAB_FILE).display()
    );
    for split in corpus::Split::ALL {
        if let Some(file) = prepared.split(split) {
            out!("{:<5} {:>10} tokens -> {}", split.name(), file.header().token_count, file.path().display());
        }
    }
}

pub fn inspect(args: InspectArgs) -> anyhow::Result<()> {
    let bytes = corpus::read_bytes(&args.file)?;
    let shown = |e: tokfile::TokFileError| anyhow::anyhow!("{}: {e}", args.file.display());
    let header = Header::parse(&bytes).map_err(shown)?;
    out!("file:       {}", args.file.display());
    out!("version:    {}", tokfile::VERSION);
    out!("id width:   {} bytes", header.id_bytes);
    out!("level:      {}", header.level);
    out!("vocabulary: {} tokens (vocabulary file checksum {:08x})", header.vocab_size, header.vocab_crc);
    out!("tokens:     {}", header.token_count);
    // Validate through the memory map, exactly as training opens the file.
    let file = match corpus::TokenFile::open(&args.file) {
        Ok(file) => file,
        Err(error) => {
            if let FileErrorKind::Format(TokFileError::PayloadChecksum { .. }) = error.kind {
                out!("checksum:   MISMATCH");
            }
            return Err(error.into());
        }
    };
    out!("checksum:   ok ({:08x}); every id is below the vocabulary size", header.payload_crc);

    let vocab_path = args.vocab.clone().or_else(|| {
        let beside = args.file.with_file_name(corpus::VOCAB_FILE);
        beside.exists().then_some(beside)
    });
    let ids = file.ids();
    let first = ids.slice(0..args.show.min(ids.len()));
    match vocab_path {
        Some(vocab_path) => {
            let (vocab, vocab_crc) = corpus::read_vocab(&vocab_path)?;
            corpus::check_against_vocab(&file, &vocab, vocab_crc, &vocab_path)
                .with_context(|| "use the vocabulary the token file was prepared with")?;
            let tokenizer = Tokenizer { level: header.level, lowercase: false };
            out!("first {} tokens ({}):", first.len(), vocab_path.display());
            out!("{}", tokenizer.detokenize((0..first.len()).map(|i| first.get(i)), &vocab));
        }
        None => {
            let ids: Vec<String> = (0..first.len()).map(|i| first.get(i).to_string()).collect();
            out!("first {} ids (no vocabulary file given): {}", first.len(), ids.join(" "));
        }
    }
    Ok(())
}

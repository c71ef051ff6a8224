//! The perplexity-per-epoch chart, as the chapter draws it with matplotlib.
//!
//! Rendered with plotters into a PNG; the text uses DejaVu Sans compiled into the binary, so
//! no system font or library is needed at run time.

use crate::files::atomic_file;
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

/// Chart size in pixels.
pub const SIZE: (u32, u32) = (800, 500);

fn register_font() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // The bytes are a valid TrueType font shipped by the `dejavu` crate.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular());
    });
}

/// Draws train (and, where known, validation) perplexity against the epoch and writes it to
/// `path` as PNG, atomically. `train[i]`, `valid[i]` and `rates[i]` (its learning rate) belong
/// to epoch `i + 1`; where the rate changes, a dashed line between the two epochs marks it,
/// labelled with the new rate.
pub fn perplexity_chart(path: &Path, train: &[f64], valid: &[Option<f64>], rates: &[f32]) -> Result<(), String> {
    register_font();
    if train.is_empty() {
        return Err("no epochs to plot".into());
    }
    // plotters picks the image format from the file name, so the temporary file ends in .png.
    let temp = atomic_file::temporary_beside(path, ".png").map_err(|e| e.to_string())?;
    draw(temp.path(), train, valid, rates).map_err(|e| format!("cannot draw the chart: {e}"))?;
    atomic_file::commit(temp, path).map_err(|e| e.to_string())
}

fn draw(path: &Path, train: &[f64], valid: &[Option<f64>], rates: &[f32]) -> Result<(), Box<dyn std::error::Error>> {
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let finite = train.iter().chain(valid.iter().flatten()).copied().filter(|v| v.is_finite());
    let top = finite.fold(1.0f64, f64::max) * 1.05;
    let epochs = train.len() as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption("perplexity per epoch", ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(if epochs > 1.0 { 1.0..epochs } else { 0.5..1.5 }, 0.0..top)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("perplexity")
        .x_labels(train.len().clamp(2, 12))
        // Epochs are whole: ticks between them stay unlabelled.
        .x_label_formatter(&|x| if x.fract() == 0.0 { format!("{x:.0}") } else { String::new() })
        .y_label_formatter(&|y| format!("{y:.0}"))
        .label_style(("sans-serif", 14))
        .draw()?;
    let train_points = train.iter().enumerate().map(|(i, &p)| (i as f64 + 1.0, p));
    chart
        .draw_series(LineSeries::new(train_points, BLUE.stroke_width(2)))?
        .label("train")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    if valid.iter().any(Option::is_some) {
        let valid_points = valid.iter().enumerate().filter_map(|(i, p)| p.map(|p| (i as f64 + 1.0, p)));
        chart
            .draw_series(LineSeries::new(valid_points, RED.stroke_width(2)))?
            .label("valid")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
    }
    // rates[i] != rates[i - 1]: epoch i + 1 trained at a new rate.
    let changes = (1..rates.len().min(train.len())).filter(|&i| rates[i] != rates[i - 1]);
    let mark = RGBColor(90, 90, 90);
    for i in changes {
        let x = i as f64 + 0.5;
        chart.draw_series(DashedLineSeries::new(vec![(x, 0.0), (x, top)], 6, 4, mark.stroke_width(1)))?;
        chart.draw_series(std::iter::once(Text::new(
            format!("lr {}", rates[i]),
            (x, top * 0.97),
            ("sans-serif", 12).into_font().color(&mark),
        )))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()?;
    root.present()?;
    Ok(())
}

//! Chart helpers shared by every PNG the tool draws.
//!
//! plotters renders text with `ab_glyph`, which needs a font registered in-process; we embed
//! DejaVu Sans (the `dejavu` crate) so that charts render identically on a machine with no
//! system fonts at all.
use crate::error::Result;
use std::path::Path;
use std::sync::Once;

static FONTS: Once = Once::new();

/// Registers the embedded font under plotters' `"sans-serif"` family. Idempotent.
pub fn init_fonts() {
    FONTS.call_once(|| {
        use plotters::style::FontStyle;
        for (style, bytes) in [
            (FontStyle::Normal, dejavu::sans::regular()),
            (FontStyle::Bold, dejavu::sans::bold()),
            (FontStyle::Italic, dejavu::sans::oblique()),
            (FontStyle::Oblique, dejavu::sans::oblique()),
        ] {
            // The bytes are a valid TTF shipped inside the dejavu crate; failure is impossible
            // in practice, and ignoring it only means text would not render.
            let _ = plotters::style::register_font("sans-serif", style, bytes);
        }
    });
}

/// Draws into an RGB buffer of `w`×`h` with `draw`, then saves it atomically as PNG.
pub fn render_png<F>(path: &Path, w: u32, h: u32, draw: F) -> Result<()>
where
    F: FnOnce(
        plotters::drawing::DrawingArea<plotters::backend::BitMapBackend<'_>, plotters::coord::Shift>,
    ) -> Result<()>,
{
    use plotters::prelude::*;
    init_fonts();
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| crate::error::err!("chart '{}': {e}", path.display()))?;
        draw(root)?;
    }
    save_rgb_png(path, w, h, buf)
}

/// Saves an RGB8 buffer as PNG, atomically.
pub fn save_rgb_png(path: &Path, w: u32, h: u32, buf: Vec<u8>) -> Result<()> {
    let img = image::RgbImage::from_raw(w, h, buf).ok_or_else(|| {
        crate::error::err!("'{}': image buffer has the wrong size", path.display())
    })?;
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .map_err(|e| crate::error::err!("'{}': PNG encoding failed: {e}", path.display()))?;
    crate::fsutil::write_bytes_atomic(path, &bytes)
}

//! What a file is, decided from its first bytes (magic numbers), never
//! from its name or the client's Content-Type; and images' dimensions and
//! thumbnails, decoded with limits against decompression bombs.

use std::io::Cursor;

/// The sniffed type: (media type, type class of `domain::files::TYPE_CLASSES`).
pub fn sniff(head: &[u8]) -> (String, &'static str) {
    // Programs first, by their shortest signatures (infer wants whole
    // headers for some): ELF, PE/DOS, Mach-O, scripts with a `#!` line.
    const PROGRAMS: &[(&[u8], &str)] = &[
        (b"\x7fELF", "application/x-executable"),
        (b"MZ", "application/vnd.microsoft.portable-executable"),
        (b"\xfe\xed\xfa\xce", "application/x-mach-binary"),
        (b"\xfe\xed\xfa\xcf", "application/x-mach-binary"),
        (b"\xce\xfa\xed\xfe", "application/x-mach-binary"),
        (b"\xcf\xfa\xed\xfe", "application/x-mach-binary"),
        (b"#!", "text/x-shellscript"),
    ];
    // Voice formats whose magic also starts with `#!`.
    if head.starts_with(b"#!AMR") {
        return ("audio/amr".to_string(), "audio");
    }
    if head.starts_with(b"#!SILK") || head.starts_with(b"\x02#!SILK") {
        return ("audio/silk".to_string(), "audio");
    }
    for (magic, mime) in PROGRAMS {
        if head.starts_with(magic) {
            return (mime.to_string(), "executable");
        }
    }
    if let Some(t) = infer::get(head) {
        let mime = t.mime_type();
        let class = match t.matcher_type() {
            _ if matches!(
                mime,
                "application/pdf" | "application/rtf" | "application/epub+zip"
            ) =>
            {
                "document"
            }
            infer::MatcherType::Image => "image",
            infer::MatcherType::Audio => "audio",
            infer::MatcherType::Video => "video",
            infer::MatcherType::Doc | infer::MatcherType::Book => "document",
            infer::MatcherType::Archive => "archive",
            infer::MatcherType::App => "executable",
            infer::MatcherType::Text if mime == "text/x-shellscript" => "executable",
            infer::MatcherType::Text => "text",
            _ => "other",
        };
        return (mime.to_string(), class);
    }
    if looks_like_text(head) {
        ("text/plain; charset=utf-8".to_string(), "text")
    } else {
        ("application/octet-stream".to_string(), "other")
    }
}

/// UTF-8 without NULs (a multi-byte character cut at the end of `head`
/// still counts).
fn looks_like_text(head: &[u8]) -> bool {
    if head.contains(&0) {
        return false;
    }
    match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none() && head.len() - e.valid_up_to() < 4,
    }
}

/// Largest picture decoded for a thumbnail, in pixels (40 megapixels).
pub const MAX_PIXELS: u64 = 40_000_000;
/// Longest side accepted.
pub const MAX_SIDE: u32 = 20_000;
/// Memory the decoder may allocate.
const MAX_ALLOC: u64 = 256 << 20;
/// Longest side of a thumbnail.
pub const THUMB_SIDE: u32 = 320;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("not an image this server can read ({0})")]
    Unreadable(String),
    #[error(
        "image of {width}x{height} pixels is too large (at most {MAX_SIDE} pixels a side and {MAX_PIXELS} pixels in all)"
    )]
    TooLarge { width: u32, height: u32 },
}

fn limits() -> image::Limits {
    let mut l = image::Limits::default();
    l.max_image_width = Some(MAX_SIDE);
    l.max_image_height = Some(MAX_SIDE);
    l.max_alloc = Some(MAX_ALLOC);
    l
}

/// Width, height and a JPEG thumbnail of an image file. The header is read
/// first: a picture that claims more pixels than [`MAX_PIXELS`] is refused
/// before anything is decoded, and the decoder runs under allocation limits.
pub fn thumbnail(bytes: &[u8]) -> Result<(u32, u32, Vec<u8>), ImageError> {
    let reader = || -> Result<image::ImageReader<Cursor<&[u8]>>, ImageError> {
        let mut r = image::ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| ImageError::Unreadable(e.to_string()))?;
        r.limits(limits());
        Ok(r)
    };
    let (width, height) = reader()?.into_dimensions().map_err(|e| match e {
        image::ImageError::Limits(_) => ImageError::TooLarge {
            width: 0,
            height: 0,
        },
        e => ImageError::Unreadable(e.to_string()),
    })?;
    if width == 0 || height == 0 {
        return Err(ImageError::Unreadable("no pixels".into()));
    }
    if u64::from(width) * u64::from(height) > MAX_PIXELS || width > MAX_SIDE || height > MAX_SIDE {
        return Err(ImageError::TooLarge { width, height });
    }
    let img = reader()?.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => ImageError::TooLarge { width, height },
        e => ImageError::Unreadable(e.to_string()),
    })?;
    // Small pictures are not enlarged.
    let thumb = if width <= THUMB_SIDE && height <= THUMB_SIDE {
        img.into_rgb8()
    } else {
        img.thumbnail(THUMB_SIDE, THUMB_SIDE).into_rgb8()
    };
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80)
        .encode_image(&thumb)
        .map_err(|e| ImageError::Unreadable(format!("thumbnail: {e}")))?;
    Ok((width, height, out))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A PNG of `w`x`h` pixels, made by the `image` crate.
    pub fn png(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 128]));
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
            .expect("encode png");
        out
    }

    /// The start of an audio-only WebM recording.
    pub fn webm() -> Vec<u8> {
        let mut b = vec![
            0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42, 0x86, 0x81, 0x01, 0x42, 0xF7, 0x81, 0x01, 0x42,
            0xF2, 0x81, 0x04, 0x42, 0xF3, 0x81, 0x08, 0x42, 0x82, 0x84,
        ];
        b.extend_from_slice(b"webm");
        b.extend_from_slice(&[0x42, 0x87, 0x81, 0x04, 0x42, 0x85, 0x81, 0x02]);
        b.extend_from_slice(&[0u8; 64]);
        b
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for b in data {
            crc ^= u32::from(*b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    /// A decompression bomb: a small valid PNG whose header claims
    /// `w`x`h` pixels (IHDR rewritten, CRC fixed).
    pub fn bomb(w: u32, h: u32) -> Vec<u8> {
        let mut b = png(8, 8);
        // Signature (8) + length (4) + "IHDR" (4), then width, height.
        b[16..20].copy_from_slice(&w.to_be_bytes());
        b[20..24].copy_from_slice(&h.to_be_bytes());
        let crc = crc32(&b[12..29]);
        b[29..33].copy_from_slice(&crc.to_be_bytes());
        b
    }

    #[test]
    fn sniffs_from_bytes_not_names() {
        assert_eq!(sniff(&png(2, 2)).1, "image");
        assert_eq!(sniff(b"%PDF-1.7\n...").1, "document");
        assert_eq!(
            sniff(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0").1,
            "executable"
        );
        assert_eq!(
            sniff(b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff").1,
            "executable"
        );
        assert_eq!(sniff(b"#!/bin/sh\nrm -rf /\n").1, "executable");
        assert_eq!(sniff(b"#!AMR\n\x3c\x00").1, "audio");
        // What a browser's MediaRecorder makes: EBML with DocType webm.
        assert_eq!(sniff(&webm()).0, "video/webm");
        assert_eq!(sniff("名字,部门\nzhang,1\n".as_bytes()).1, "text");
        // A cut multi-byte character at the end of the head is still text.
        let t = "名字".as_bytes();
        assert_eq!(sniff(&t[..4]).1, "text");
        assert_eq!(sniff(&[0u8, 1, 2, 3, 0xff]).1, "other");
    }

    #[test]
    fn thumbnails_and_refuses_bombs() {
        let (w, h, t) = thumbnail(&png(640, 480)).expect("thumb");
        assert_eq!((w, h), (640, 480));
        assert_eq!(sniff(&t).0, "image/jpeg");
        let (tw, th, _) = thumbnail(&t).expect("thumb of thumb");
        assert_eq!((tw, th), (THUMB_SIDE, 240));
        // Small pictures keep their size.
        let (_, _, small) = thumbnail(&png(64, 48)).expect("small");
        assert_eq!(thumbnail(&small).expect("again").0, 64);
        // 100,000 x 100,000 claimed in a few hundred bytes: refused from
        // the header, nothing decoded.
        let b = bomb(100_000, 100_000);
        assert!(b.len() < 1024);
        assert!(matches!(thumbnail(&b), Err(ImageError::TooLarge { .. })));
        // Within the side limit but too many pixels in all.
        assert!(matches!(
            thumbnail(&bomb(15_000, 15_000)),
            Err(ImageError::TooLarge { .. })
        ));
        assert!(thumbnail(b"GIF89a not really").is_err());
    }
}

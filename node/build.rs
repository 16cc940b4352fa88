//! The node embeds `web/dist` (`http/assets.rs`, `include_dir!`), which
//! cargo does not track by itself: rebuild when the built web pages
//! change, so a fresh `npm run build` is never silently left out.

fn main() {
    println!("cargo:rerun-if-changed=../web/dist");
}

//! Integrated apps below the faces: WeCom's callback crypto and batch CSV
//! templates, app access tokens, and delivering callbacks to an app's
//! server. Used by the `wecom` face, the `admin` face (`app set-callback`
//! runs the URL handshake) and the leader's runner.

pub mod crypto;
pub mod csv;
pub mod delivery;
pub mod tokens;

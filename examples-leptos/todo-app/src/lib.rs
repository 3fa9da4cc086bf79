//! A todo web app whose whole data layer is an eventfold log.
//!
//! Read [`state`] first (the events, views and reducers), then [`server`]
//! (the server functions around the log), then [`app`] and [`components`]
//! (the page).
//!
//! Built twice from the same source: with the `ssr` feature as the server
//! binary (`src/main.rs`), with the `hydrate` feature as the WebAssembly
//! module that makes the server-rendered page interactive.

#![deny(missing_docs)]

pub mod app;
pub mod components;
pub mod server;
pub mod state;

/// Entry point of the WebAssembly module: attaches the client to the page
/// the server rendered.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}

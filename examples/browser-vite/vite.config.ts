import { defineConfig } from "vite";

/**
 * `pnpm dev` serves the app on Vite's dev server and forwards the signalling request to the
 * inference server (VIDRTC_API_URL, default http://127.0.0.1:9001), so the page's own origin works
 * as its API URL. The media itself goes peer to peer over WebRTC, not through this proxy.
 */
const api = process.env.VIDRTC_API_URL ?? "http://127.0.0.1:9001";

export default defineConfig({
  server: {
    host: "127.0.0.1",
    proxy: { "/initialise_webrtc_worker": api, "/healthz": api },
  },
});

import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// The control plane serves dist/ at /console with a strict
// Content-Security-Policy (script-src 'self', style-src 'self', no inline
// code): nothing here may emit an inline script or style, and no asset may
// come from elsewhere at run time.
export default defineConfig({
  base: "/console/",
  plugins: [react()],
  // Workspace packages resolve to their TypeScript sources (as in tests).
  resolve: { conditions: ["source", "browser", "module", "import", "default"] },
  build: {
    outDir: "dist",
    assetsDir: "assets",
    emptyOutDir: true,
    // Inlined assets would be data: URLs in stylesheets or scripts; keep them files.
    assetsInlineLimit: 0,
    // The polyfill is an inline script in some set-ups; every supported browser has modulepreload.
    modulePreload: { polyfill: false },
    sourcemap: false,
    chunkSizeWarningLimit: 600,
  },
});

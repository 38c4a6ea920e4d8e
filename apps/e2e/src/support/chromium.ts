/**
 * Launch the system's Chromium (Debian's /usr/bin/chromium) through playwright-core, headless,
 * with a throwaway profile, set up for loopback-only WebRTC inside an isolated network namespace.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import type { startHttpServer } from "./http.js";

/** Features switched off: ours first, then the ones Playwright's own (overridden) list disables. */
const DISABLED_FEATURES = [
  "WebRtcHideLocalIpsWithMdns",
  "NetworkTimeServiceQuerying",
  "OptimizationHints",
  "AimEnabled",
  "PreconnectToSearch",
  "MediaRouter",
  "LensOverlay",
  "HttpsUpgrades",
  "HttpsFirstBalancedModeAutoEnable",
  "AvoidUnnecessaryBeforeUnloadCheckSync",
  "DestroyProfileOnBrowserClose",
  "PaintHolding",
  "ThirdPartyStoragePartitioning",
  "AvoidCorsURLLoaderRestartOnRedirect",
];

/**
 * The Chromium switches every browser test uses:
 * loopback ICE candidates allowed and not hidden behind mDNS names (so two peers on 127.0.0.1
 * find each other with no network), headless, no sandbox (root in CI), no GPU, and no
 * background traffic (QUIC, component updates, sync, first-run).
 *
 * Playwright adds its own defaults before these, including its own `--disable-features` list.
 * Chromium honours only the last `--disable-features` switch, so ours repeats Playwright's
 * background-traffic features (network time, optimization hints, search preconnect, ...) next
 * to `WebRtcHideLocalIpsWithMdns`; otherwise Chromium tries to reach Google hosts at start.
 *
 * The flags alone give a page no ICE candidates in an isolated namespace: with mDNS hiding off,
 * Chromium enumerates interfaces only for origins holding camera/microphone permission, and
 * otherwise offers at most a default-route address (none here, with or without the fake NIC
 * of `netns-run.sh --nic`). With the permission it offers 127.0.0.1 host candidates. Grant it with
 * {@link LaunchChromiumOptions.webrtcOrigins} or {@link ChromiumSession.allowHostCandidates}.
 */
export const CHROMIUM_FLAGS: readonly string[] = Object.freeze([
  "--allow-loopback-in-peer-connection",
  `--disable-features=${DISABLED_FEATURES.join(",")}`,
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
]);

/** Default binary; override with `VIDRTC_CHROMIUM` or {@link LaunchChromiumOptions.executablePath}. */
export const DEFAULT_CHROMIUM_PATH = "/usr/bin/chromium";

/** Options for {@link launchChromium}. */
export interface LaunchChromiumOptions {
  /** Chromium binary (default: `$VIDRTC_CHROMIUM` or /usr/bin/chromium). */
  executablePath?: string;
  /** More switches after {@link CHROMIUM_FLAGS}. */
  extraArgs?: string[];
  /** Launch timeout in ms (default 60000). */
  timeoutMs?: number;
  /** Aborts the launch (the browser is closed if it already started). */
  signal?: AbortSignal;
  /**
   * Origins (e.g. a {@link startHttpServer} URL) whose pages may gather host ICE candidates
   * (see {@link ChromiumSession.allowHostCandidates}).
   */
  webrtcOrigins?: string[];
  /** Called with every page console message (`type: text`), e.g. to forward browser logs. */
  onConsole?: (line: string) => void;
}

/** A running headless Chromium with its own temporary profile. */
export interface ChromiumSession {
  /** The persistent browser context (one per launch). */
  readonly context: BrowserContext;
  /** The temporary `--user-data-dir`, removed by {@link ChromiumSession.close}. */
  readonly userDataDir: string;
  /** Opens a new page (tab). */
  newPage(): Promise<Page>;
  /**
   * Lets pages of `origin` (`http://127.0.0.1:port`) gather host ICE candidates, 127.0.0.1
   * included, by granting it camera and microphone permission (no device is opened). Without
   * this an in-page RTCPeerConnection gets no candidates in a loopback-only namespace.
   */
  allowHostCandidates(origin: string): Promise<void>;
  /** Closes the browser and deletes the profile directory. Safe to call more than once. */
  close(): Promise<void>;
  /** Same as {@link ChromiumSession.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Starts headless Chromium with {@link CHROMIUM_FLAGS} and a fresh temporary `--user-data-dir`
 * (via `launchPersistentContext`, since Playwright manages that switch itself).
 * Run it inside scripts/netns-run.sh: the flags keep Chromium quiet, the namespace makes sure.
 */
export async function launchChromium(options: LaunchChromiumOptions = {}): Promise<ChromiumSession> {
  options.signal?.throwIfAborted();
  const executablePath = options.executablePath ?? process.env.VIDRTC_CHROMIUM ?? DEFAULT_CHROMIUM_PATH;
  const userDataDir = await mkdtemp(join(tmpdir(), "vidrtc-chromium-"));
  let context: BrowserContext;
  try {
    const launching = chromium.launchPersistentContext(userDataDir, {
      executablePath,
      headless: true,
      args: [...CHROMIUM_FLAGS, ...(options.extraArgs ?? [])],
      timeout: options.timeoutMs ?? 60_000,
    });
    context = await raceAbort(launching, options.signal, (late) => void late.close().catch(() => {}));
  } catch (error) {
    await rm(userDataDir, { recursive: true, force: true, maxRetries: 3 });
    throw new Error(`Could not launch Chromium at ${executablePath}: ${(error as Error).message}`, {
      cause: error,
    });
  }

  const allowHostCandidates = (origin: string): Promise<void> =>
    context.grantPermissions(["camera", "microphone"], { origin: new URL(origin).origin });
  try {
    for (const origin of options.webrtcOrigins ?? []) await allowHostCandidates(origin);
  } catch (error) {
    await context.close().catch(() => {});
    await rm(userDataDir, { recursive: true, force: true, maxRetries: 3 });
    throw error;
  }

  const onConsole = options.onConsole;
  if (onConsole) {
    context.on("console", (message) => onConsole(`${message.type()}: ${message.text()}`));
  }

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      try {
        await context.close();
      } finally {
        await rm(userDataDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
      }
    })();
    return closing;
  };

  return {
    context,
    userDataDir,
    newPage: () => context.newPage(),
    allowHostCandidates,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** Resolves with `promise`, or rejects when `signal` aborts first (then `onLate` gets the late value). */
function raceAbort<T>(
  promise: Promise<T>,
  signal: AbortSignal | undefined,
  onLate: (value: T) => void,
): Promise<T> {
  if (!signal) return promise;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) {
      onAbort();
      promise.then(onLate, () => {});
      return;
    }
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        if (signal.aborted) onLate(value);
        else resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}

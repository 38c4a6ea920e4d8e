/**
 * @vidrtc/server: a local inference server that speaks Roboflow's WebRTC video-upload protocol.
 * `createServer(options).listen()` starts it; the `vidrtc-server` bin does the same from a shell.
 */
export {
  type ConsoleLoggerOptions,
  createConsoleLogger,
  prefixLogger,
  type ServerLogger,
  silentLogger,
} from "./log.js";
export type { VideoInfo } from "./media/probe.js";
export { checkFfmpeg } from "./media/probe.js";
export type {
  InitialiseRequest,
  RequestIceServer,
  ValidationIssue,
  WorkflowConfiguration,
} from "./request.js";
export {
  buildAnswererConfig,
  chooseServerTransport,
  createServer,
  type ListeningAddress,
  SERVER_TRANSPORT_NAMES,
  SERVER_VERSION,
  type ServerOptions,
  type ServerTransportName,
  type TransportChoice,
  type TransportChoiceEnvironment,
  type VidrtcServer,
} from "./server.js";
export type { SessionEvent, SessionState } from "./session/index.js";
export {
  type AnyWorkflow,
  BUILTIN_WORKFLOWS,
  defineWorkflow,
  type EngineFrame,
  ParameterError,
  type ParameterIssue,
  type ParameterSchema,
  type ParameterSpec,
  type RegistryEntry,
  resolveWorkflow,
  type Workflow,
  type WorkflowDefinition,
  type WorkflowFrameOutput,
  type WorkflowInstance,
  type WorkflowOutputSpec,
  WorkflowRegistry,
} from "./workflows/index.js";

import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import type { ProtoGrpcType as AgentProto } from "./generated/agent.js";
import type { ProtoGrpcType as ConfigProto } from "./generated/config.js";

export type {
  AgentFrame as AgentFrameInput,
  AgentFrame__Output as AgentFrame,
} from "./generated/modelgate/agent/v1/AgentFrame.js";
export type {
  AgentMessage as AgentMessageInput,
  AgentMessage__Output as AgentMessage,
} from "./generated/modelgate/agent/v1/AgentMessage.js";
export type { AgentTunnelClient, AgentTunnelHandlers } from "./generated/modelgate/agent/v1/AgentTunnel.js";
export type { Decision, Decision__Output as ReceivedDecision } from "./generated/modelgate/agent/v1/Decision.js";
export type { ErrorCode } from "./generated/modelgate/agent/v1/ErrorCode.js";
export type {
  GatewayFrame as GatewayFrameInput,
  GatewayFrame__Output as GatewayFrame,
} from "./generated/modelgate/agent/v1/GatewayFrame.js";
export type {
  GatewayMessage as GatewayMessageInput,
  GatewayMessage__Output as GatewayMessage,
} from "./generated/modelgate/agent/v1/GatewayMessage.js";
export type { Header } from "./generated/modelgate/agent/v1/Header.js";
export type { RequestHead__Output as RequestHead } from "./generated/modelgate/agent/v1/RequestHead.js";
export type {
  ResponseHead as ResponseHeadInput,
  ResponseHead__Output as ResponseHead,
} from "./generated/modelgate/agent/v1/ResponseHead.js";
export type { ResponsePart as ResponsePartInput } from "./generated/modelgate/agent/v1/ResponsePart.js";
export type { RuntimeHealth } from "./generated/modelgate/agent/v1/RuntimeHealth.js";
export type { AgentCredential__Output as AgentCredentialMessage } from "./generated/modelgate/config/v1/AgentCredential.js";
export type {
  AgentPresence as AgentPresenceInput,
  AgentPresence__Output as AgentPresence,
} from "./generated/modelgate/config/v1/AgentPresence.js";
export type { AgentState } from "./generated/modelgate/config/v1/AgentState.js";
export type { ApiKeyCredential__Output as ApiKeyCredentialMessage } from "./generated/modelgate/config/v1/ApiKeyCredential.js";
export type {
  Approval as ApprovalInput,
  Approval__Output as ApprovalMessage,
} from "./generated/modelgate/config/v1/Approval.js";
export type { ApprovalDecider__Output as ApprovalDeciderMessage } from "./generated/modelgate/config/v1/ApprovalDecider.js";
export type { ApprovalOutcome } from "./generated/modelgate/config/v1/ApprovalOutcome.js";
export type {
  ApprovalRequest as ApprovalRequestInput,
  ApprovalRequest__Output as ApprovalRequestMessage,
} from "./generated/modelgate/config/v1/ApprovalRequest.js";
export type {
  ApprovalTicket as ApprovalTicketInput,
  ApprovalTicket__Output as ApprovalTicket,
} from "./generated/modelgate/config/v1/ApprovalTicket.js";
export type {
  ConfigDelta as ConfigDeltaInput,
  ConfigDelta__Output as ConfigDelta,
} from "./generated/modelgate/config/v1/ConfigDelta.js";
export type {
  ConfigSnapshot as ConfigSnapshotInput,
  ConfigSnapshot__Output as ConfigSnapshot,
} from "./generated/modelgate/config/v1/ConfigSnapshot.js";
export type {
  ConfigUpdate as ConfigUpdateInput,
  ConfigUpdate__Output as ConfigUpdate,
} from "./generated/modelgate/config/v1/ConfigUpdate.js";
export type { Connection__Output as ConnectionMessage } from "./generated/modelgate/config/v1/Connection.js";
export type {
  ConsumeApprovalRequest as ConsumeApprovalRequestInput,
  ConsumeApprovalRequest__Output as ConsumeApprovalRequestMessage,
} from "./generated/modelgate/config/v1/ConsumeApprovalRequest.js";
export type {
  ConsumeApprovalResult as ConsumeApprovalResultInput,
  ConsumeApprovalResult__Output as ConsumeApprovalResult,
} from "./generated/modelgate/config/v1/ConsumeApprovalResult.js";
export type { GatewayConfigClient, GatewayConfigHandlers } from "./generated/modelgate/config/v1/GatewayConfig.js";
export type {
  GatewayReport as GatewayReportInput,
  GatewayReport__Output as GatewayReport,
} from "./generated/modelgate/config/v1/GatewayReport.js";
export type { Policy as PolicyInput, Policy__Output as Policy } from "./generated/modelgate/config/v1/Policy.js";
export type { Protocol } from "./generated/modelgate/config/v1/Protocol.js";
export type {
  QuotaThresholdReport as QuotaThresholdReportInput,
  QuotaThresholdReport__Output as QuotaThresholdReportMessage,
} from "./generated/modelgate/config/v1/QuotaThresholdReport.js";
export type { SnapshotReason } from "./generated/modelgate/config/v1/SnapshotReason.js";

/**
 * Where the `.proto` files are. The build copies them into `dist/proto/`
 * beside the built module, so the built package needs nothing outside its
 * own folder (the container image ships only `dist/`); run from its
 * TypeScript source (tests), it reads the repository's `proto/` instead.
 * Decided by the module's own file name, not by which folder exists, so a
 * build that lost its copies fails loudly instead of reading a checkout.
 */
export const PROTO_ROOT = fileURLToPath(
  import.meta.url.endsWith(".ts") ? new URL("../../../proto/", import.meta.url) : new URL("./proto/", import.meta.url),
);

// Must match the flags of the `generate` script, or the generated types lie.
const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_ROOT],
};

/** Metadata that binds an Exchange stream to the agent's registration. */
export const TUNNEL_ID_METADATA = "x-modelgate-tunnel";

let agentProto: AgentProto | undefined;
let configProto: ConfigProto | undefined;

export function loadAgentProto(): AgentProto {
  agentProto ??= grpc.loadPackageDefinition(
    protoLoader.loadSync("modelgate/agent/v1/agent.proto", LOADER_OPTIONS),
  ) as unknown as AgentProto;
  return agentProto;
}

export function loadConfigProto(): ConfigProto {
  configProto ??= grpc.loadPackageDefinition(
    protoLoader.loadSync("modelgate/config/v1/config.proto", LOADER_OPTIONS),
  ) as unknown as ConfigProto;
  return configProto;
}

/**
 * HTTP/2 keepalive for long-lived tunnels: dead peers behind NATs and load
 * balancers are noticed within ~20 s even when no request is running.
 */
export const KEEPALIVE_OPTIONS: grpc.ChannelOptions = {
  "grpc.keepalive_time_ms": 10_000,
  "grpc.keepalive_timeout_ms": 10_000,
  "grpc.keepalive_permit_without_calls": 1,
  "grpc.http2.min_ping_interval_without_data_ms": 5_000,
};

/**
 * A request travels to the agent as one message with its whole body (the
 * gateway caps bodies at 512 MiB), so the agent accepts large messages.
 * Responses come back in small frames, so gateways keep gRPC's 4 MiB default.
 */
export const AGENT_CHANNEL_OPTIONS: grpc.ChannelOptions = {
  ...KEEPALIVE_OPTIONS,
  "grpc.max_receive_message_length": 513 * 1024 * 1024,
};

/** Server side of KEEPALIVE_OPTIONS: accept the clients' pings, ping back. */
export const SERVER_KEEPALIVE_OPTIONS: grpc.ServerOptions = {
  "grpc.keepalive_time_ms": 10_000,
  "grpc.keepalive_timeout_ms": 10_000,
  "grpc.keepalive_permit_without_calls": 1,
  "grpc.http2.min_ping_interval_without_data_ms": 5_000,
  "grpc.http2.max_ping_strikes": 0,
};

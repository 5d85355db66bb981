// client.mjs drives the a2abus gateway with the official A2A JS SDK
// (@a2a-js/sdk); TestJSSDK (../../jssdk_test.go) runs it as
//
//	node client.mjs <gateway base URL>
//
// The gateway must serve the demo agents echo, worker (a short delay) and
// slow (a delay long enough to cancel it). Every check runs twice: through
// the card's A2A 1.0 JSON-RPC interface with the SDK's own transport, and
// through its 0.3 interface with the SDK's v0.3 compatibility transport.
// Each check prints "ok" or "FAIL" with what it got and wanted; the script
// exits 1 if any failed, 2 on bad usage.

import {
  ClientFactory,
  ClientFactoryOptions,
  DefaultAgentCardResolver,
  JsonRpcTransportFactory,
} from "@a2a-js/sdk/client";
import { Role, SendMessageRequest, taskStateToJSON } from "@a2a-js/sdk";

// Each call gets this long before it is aborted, so a hang is reported as
// the call that hung rather than as the Go test's timeout.
const CALL_TIMEOUT_MS = 20_000;

const [major] = process.versions.node.split(".").map(Number);
if (major < 20) {
  console.error(`FAIL node ${process.versions.node}: @a2a-js/sdk 1.3.0 needs Node.js 20 or later`);
  process.exit(1);
}
const base = process.argv[2];
if (!base) {
  console.error("usage: node client.mjs <gateway base URL, e.g. http://127.0.0.1:8080>");
  process.exit(2);
}

const resolver = new DefaultAgentCardResolver();
const factory = new ClientFactory(
  ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
    transports: [new JsonRpcTransportFactory({ legacyCompat: { enabled: true } })],
  }),
);

const failures = [];

// check runs one named step and records its failure.
async function check(name, fn) {
  try {
    await fn();
    console.log(`ok   ${name}`);
  } catch (err) {
    let why = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    if (err?.cause) {
      why += ` (cause: ${err.cause.message ?? err.cause})`;
    }
    console.log(`FAIL ${name}: ${why}`);
    failures.push(name);
  }
}

function expect(what, got, want) {
  if (got !== want) {
    throw new Error(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
  }
}

function opts() {
  return { signal: AbortSignal.timeout(CALL_TIMEOUT_MS) };
}

// text joins the text parts.
function text(parts) {
  return (parts ?? []).map((p) => (p.content?.$case === "text" ? p.content.value : "")).join("");
}

function state(task) {
  return taskStateToJSON(task?.status?.state);
}

// request is a SendMessageRequest in the SDK's shape, written as its JSON.
function request(s, configuration) {
  return SendMessageRequest.fromJSON({
    message: {
      messageId: `js-${Date.now()}-${Math.random().toString(16).slice(2)}`,
      role: "ROLE_USER",
      parts: [{ text: s }],
    },
    configuration,
  });
}

// client resolves agent's card from the gateway and makes a client that
// uses the card's JSON-RPC interface of the protocol version.
//
// The card is named by its full URL: the SDK resolves its default path
// "/.well-known/agent-card.json" against the base URL as an absolute path
// (new URL(path, base)), which would drop the gateway's /a2a/<agentID>.
async function client(agent, version) {
  const url = `${base}/a2a/${agent}/.well-known/agent-card.json`;
  const card = await resolver.resolve(url, "");
  const iface = (card.supportedInterfaces ?? []).find(
    (i) => i.protocolBinding === "JSONRPC" && i.protocolVersion === version,
  );
  if (!iface) {
    throw new Error(`${url} lists no JSONRPC interface of version ${version}: ${JSON.stringify(card.supportedInterfaces)}`);
  }
  // For 1.0 the SDK picks the interface itself from the whole card.
  const c = await factory.createFromAgentCard(version === "1.0" ? card : { ...card, supportedInterfaces: [iface] });
  expect(`${agent}: the client's protocol version`, c.protocolVersion, version);
  expect(`${agent}: the client's endpoint`, c.transport.endpoint, iface.url);
  return c;
}

async function suite(version) {
  const tag = `[A2A ${version}]`;
  let echo, worker, slow;
  await check(`${tag} resolve the cards of echo, worker and slow`, async () => {
    [echo, worker, slow] = await Promise.all([client("echo", version), client("worker", version), client("slow", version)]);
  });
  if (!echo || !worker || !slow) {
    return;
  }

  await check(`${tag} SendMessage to echo returns the text as a message`, async () => {
    const sent = `hello from the JS SDK over ${version}`;
    const res = await echo.sendMessage(request(sent), opts());
    if (!("messageId" in res)) {
      throw new Error(`result is not a message: ${JSON.stringify(res)}`);
    }
    expect("role", res.role, Role.ROLE_AGENT);
    expect("text", text(res.parts), sent);
  });

  let taskID;
  await check(`${tag} SendStreamingMessage to worker: task, working, artifact, completed`, async () => {
    const events = [];
    for await (const ev of worker.sendMessageStream(request("job"), opts())) {
      const { $case, value } = ev.payload ?? {};
      switch ($case) {
        case "task":
          taskID = value.id;
          events.push(`task:${state(value)}`);
          break;
        case "statusUpdate":
          events.push(`status:${state(value)}`);
          break;
        case "artifactUpdate":
          events.push(`artifact:${text(value.artifact?.parts)}`);
          break;
        default:
          events.push(`${$case}:${JSON.stringify(value)}`);
      }
    }
    expect(
      "events",
      events.join(" | "),
      "task:TASK_STATE_SUBMITTED | status:TASK_STATE_WORKING | artifact:done: job | status:TASK_STATE_COMPLETED",
    );
  });

  if (taskID) {
    await check(`${tag} GetTask: the streamed task is completed with its artifact`, async () => {
      const task = await worker.getTask({ tenant: "", id: taskID }, opts());
      expect("id", task.id, taskID);
      expect("state", state(task), "TASK_STATE_COMPLETED");
      expect("artifacts", task.artifacts.map((a) => text(a.parts)).join(" | "), "done: job");
    });
    await check(`${tag} CancelTask of a completed task: TaskNotCancelableError`, async () => {
      const err = await worker.cancelTask({ tenant: "", id: taskID, metadata: undefined }, opts()).then(
        (task) => `no error but the task ${JSON.stringify(task)}`,
        (e) => e.name,
      );
      expect("error", err, "TaskNotCancelableError");
    });
  }

  await check(`${tag} GetTask of an unknown task: TaskNotFoundError`, async () => {
    const err = await worker.getTask({ tenant: "", id: "no-such-task" }, opts()).then(
      (task) => `no error but the task ${JSON.stringify(task)}`,
      (e) => e.name,
    );
    expect("error", err, "TaskNotFoundError");
  });

  await check(`${tag} CancelTask of a running task on slow: canceled, and GetTask says so`, async () => {
    const res = await slow.sendMessage(request("long job", { returnImmediately: true }), opts());
    if (!("status" in res)) {
      throw new Error(`SendMessage with returnImmediately: result is not a task: ${JSON.stringify(res)}`);
    }
    const running = state(res);
    if (running !== "TASK_STATE_SUBMITTED" && running !== "TASK_STATE_WORKING") {
      throw new Error(`the started task is ${running}, want submitted or working`);
    }
    const canceled = await slow.cancelTask({ tenant: "", id: res.id, metadata: undefined }, opts());
    expect("CancelTask: id", canceled.id, res.id);
    expect("CancelTask: state", state(canceled), "TASK_STATE_CANCELED");
    const got = await slow.getTask({ tenant: "", id: res.id }, opts());
    expect("GetTask after the cancel: state", state(got), "TASK_STATE_CANCELED");
  });

  await check(`${tag} SubscribeToTask of a running task on slow sees it canceled`, async () => {
    const res = await slow.sendMessage(request("watched job", { returnImmediately: true }), opts());
    if (!("status" in res)) {
      throw new Error(`SendMessage with returnImmediately: result is not a task: ${JSON.stringify(res)}`);
    }
    const events = [];
    let canceled = false;
    for await (const ev of slow.resubscribeTask({ tenant: "", id: res.id }, opts())) {
      const { $case, value } = ev.payload ?? {};
      events.push(`${$case}:${$case === "task" || $case === "statusUpdate" ? state(value) : JSON.stringify(value)}`);
      if (!canceled) {
        // The subscription is open: cancel the task it watches.
        canceled = true;
        await slow.cancelTask({ tenant: "", id: res.id, metadata: undefined }, opts());
      }
    }
    const last = events.at(-1);
    expect(`the last event (of ${events.join(" | ")})`, last, "statusUpdate:TASK_STATE_CANCELED");
  });
}

for (const version of ["1.0", "0.3"]) {
  await suite(version);
}
if (failures.length > 0) {
  console.log(`\n${failures.length} check(s) failed against ${base}`);
  process.exit(1);
}
console.log(`\nall checks passed against ${base}`);

// The operator feed (/ws/operator): live events for every page, a status the shell shows as a banner when the
// connection is lost, and a resync after every reconnect so pages reload what happened meanwhile.
// The socket authenticates with the session cookie (same origin; the server checks Origin): no token in the URL.
import { writable, type Readable } from "svelte/store";

export type LiveStatus = "idle" | "connecting" | "open" | "lost";
export type FeedEvent = { type: string; seq?: number } & Record<string, unknown>;
type Handler = (event: FeedEvent) => void;

export interface SocketLike {
  onopen: ((this: unknown, ev: Event) => unknown) | null;
  onclose: ((this: unknown, ev: CloseEvent) => unknown) | null;
  onmessage: ((this: unknown, ev: MessageEvent) => unknown) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export interface LiveOptions {
  url?: () => string;
  open?: (url: string) => SocketLike;
  pingSeconds?: number;
  /** Delays before each reconnect attempt, in seconds; the last one repeats. */
  backoff?: number[];
}

export class LiveFeed {
  private readonly statusStore = writable<LiveStatus>("idle");
  readonly status: Readable<LiveStatus> = { subscribe: this.statusStore.subscribe };
  private readonly reasonStore = writable<string | null>(null);
  /** The server's reason for the last close, when it gave one (e.g. a missing role). */
  readonly reason: Readable<string | null> = { subscribe: this.reasonStore.subscribe };
  private handlers = new Map<string, Set<Handler>>();
  private resyncHandlers = new Set<() => void>();
  private socket: SocketLike | null = null;
  private lastSeq = 0;
  private attempt = 0;
  private wanted = false;
  private everOpen = false;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private pinger: ReturnType<typeof setInterval> | null = null;

  constructor(private readonly options: LiveOptions = {}) {}

  /** Subscribe to one event type ("*" for all); returns the unsubscribe. */
  on(type: string, handler: Handler): () => void {
    let set = this.handlers.get(type);
    if (!set) {
      set = new Set();
      this.handlers.set(type, set);
    }
    set.add(handler);
    return () => set.delete(handler);
  }

  /** Called after every reconnect (and on the server's `reload`): reload the page's data from the API. */
  onResync(handler: () => void): () => void {
    this.resyncHandlers.add(handler);
    return () => this.resyncHandlers.delete(handler);
  }

  get cursor(): number {
    return this.lastSeq;
  }

  start(): void {
    if (this.wanted) return;
    this.wanted = true;
    this.connect();
  }

  stop(): void {
    this.wanted = false;
    this.everOpen = false;
    this.lastSeq = 0;
    if (this.timer) clearTimeout(this.timer);
    if (this.pinger) clearInterval(this.pinger);
    this.timer = null;
    this.pinger = null;
    const socket = this.socket;
    this.socket = null;
    socket?.close(1000, "signed out");
    this.statusStore.set("idle");
  }

  private url(): string {
    if (this.options.url) return this.options.url();
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const since = this.lastSeq > 0 ? `?since=${this.lastSeq}` : "";
    return `${scheme}//${location.host}/ws/operator${since}`;
  }

  private connect(): void {
    this.statusStore.set(this.everOpen ? "lost" : "connecting");
    const open = this.options.open ?? ((url: string) => new WebSocket(url) as unknown as SocketLike);
    const socket = open(this.url());
    this.socket = socket;
    socket.onmessage = (message) => {
      if (this.socket !== socket) return;
      let event: FeedEvent;
      try {
        event = JSON.parse(String(message.data)) as FeedEvent;
      } catch {
        return;
      }
      this.receive(event);
    };
    socket.onclose = (close) => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (this.pinger) clearInterval(this.pinger);
      this.pinger = null;
      this.reasonStore.set(close.reason || null);
      if (!this.wanted) return;
      this.statusStore.set(this.everOpen ? "lost" : "connecting");
      const delays = this.options.backoff ?? [1, 2, 4, 8, 15];
      const delay = delays[Math.min(this.attempt, delays.length - 1)] ?? 15;
      this.attempt += 1;
      this.timer = setTimeout(() => this.connect(), delay * 1000);
    };
  }

  /** Handles one server message (public for tests). */
  receive(event: FeedEvent): void {
    if (event.type === "welcome") {
      const resumed = this.everOpen;
      this.everOpen = true;
      this.attempt = 0;
      this.reasonStore.set(null);
      this.statusStore.set("open");
      const seconds = this.options.pingSeconds ?? 25;
      if (this.pinger) clearInterval(this.pinger);
      this.pinger = setInterval(() => this.socket?.send(JSON.stringify({ type: "ping", id: "keepalive" })), seconds * 1000);
      if (typeof event.seq === "number" && event.seq > this.lastSeq) this.lastSeq = event.seq;
      if (resumed) this.resync();
      return;
    }
    if (event.type === "reload") {
      if (typeof event.seq === "number") this.lastSeq = event.seq;
      this.resync();
      return;
    }
    if (typeof event.seq === "number") {
      if (event.seq <= this.lastSeq) return; // replayed twice: once is enough
      this.lastSeq = event.seq;
    }
    for (const type of [event.type, "*"]) {
      for (const handler of this.handlers.get(type) ?? []) handler(event);
    }
  }

  private resync(): void {
    for (const handler of this.resyncHandlers) handler();
  }
}

export const live = new LiveFeed();

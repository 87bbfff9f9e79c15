import { get } from "svelte/store";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { LiveFeed, type SocketLike } from "./live";

class FakeSocket implements SocketLike {
  onopen = null;
  onclose: SocketLike["onclose"] = null;
  onmessage: SocketLike["onmessage"] = null;
  sent: string[] = [];
  closed = false;
  constructor(readonly url: string) {}
  send(data: string) {
    this.sent.push(data);
  }
  close() {
    this.closed = true;
  }
  deliver(event: object) {
    this.onmessage?.call(this, { data: JSON.stringify(event) } as MessageEvent);
  }
  drop(reason = "") {
    this.onclose?.call(this, { code: 1006, reason } as CloseEvent);
  }
}

describe("LiveFeed", () => {
  let sockets: FakeSocket[];
  let feed: LiveFeed;
  beforeEach(() => {
    vi.useFakeTimers();
    sockets = [];
    feed = new LiveFeed({
      url: () => `ws://test/ws/operator${feed.cursor ? `?since=${feed.cursor}` : ""}`,
      open: (url) => {
        const socket = new FakeSocket(url);
        sockets.push(socket);
        return socket;
      },
      backoff: [1, 2],
    });
  });
  afterEach(() => vi.useRealTimers());

  it("delivers events in order, once, and resumes from the last seq after a loss, then asks pages to resync", () => {
    const seen: number[] = [];
    const resyncs = vi.fn();
    feed.on("report_new", (event) => seen.push(event.seq ?? -1));
    feed.onResync(resyncs);
    feed.start();
    expect(get(feed.status)).toBe("connecting");
    sockets[0]!.deliver({ type: "welcome", seq: 10 });
    expect(get(feed.status)).toBe("open");
    sockets[0]!.deliver({ type: "report_new", seq: 11 });
    sockets[0]!.deliver({ type: "report_new", seq: 11 });
    sockets[0]!.deliver({ type: "report_new", seq: 12 });
    sockets[0]!.drop();
    expect(get(feed.status)).toBe("lost");
    expect(resyncs).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1000);
    expect(sockets[1]!.url).toBe("ws://test/ws/operator?since=12");
    sockets[1]!.deliver({ type: "welcome", seq: 12 });
    sockets[1]!.deliver({ type: "report_new", seq: 13 });
    expect(seen).toEqual([11, 12, 13]);
    expect(resyncs).toHaveBeenCalledTimes(1);
    expect(get(feed.status)).toBe("open");
  });

  it("backs off between attempts and keeps the server's reason", () => {
    feed.start();
    sockets[0]!.drop("missing role");
    expect(get(feed.reason)).toBe("missing role");
    vi.advanceTimersByTime(999);
    expect(sockets).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(sockets).toHaveLength(2);
    sockets[1]!.drop();
    vi.advanceTimersByTime(1999);
    expect(sockets).toHaveLength(2);
    vi.advanceTimersByTime(1);
    expect(sockets).toHaveLength(3);
  });

  it("a reload message asks pages to resync; stop closes and stays closed", () => {
    const resyncs = vi.fn();
    feed.onResync(resyncs);
    feed.start();
    sockets[0]!.deliver({ type: "welcome", seq: 1 });
    sockets[0]!.deliver({ type: "reload", seq: 700 });
    expect(resyncs).toHaveBeenCalledTimes(1);
    expect(feed.cursor).toBe(700);
    feed.stop();
    expect(sockets[0]!.closed).toBe(true);
    vi.advanceTimersByTime(60_000);
    expect(sockets).toHaveLength(1);
    expect(get(feed.status)).toBe("idle");
  });

  it("pings while open", () => {
    feed.start();
    sockets[0]!.deliver({ type: "welcome", seq: 0 });
    vi.advanceTimersByTime(25_000);
    expect(sockets[0]!.sent.map((s) => JSON.parse(s).type)).toEqual(["ping"]);
  });
});

import { describe, expect, it } from "vitest";
import { findRoute, hashQuery, matchPath } from "./router";

describe("router", () => {
  it("matches static and parameter segments", () => {
    expect(matchPath("/alerts/:id", "/alerts/42")).toEqual({ id: "42" });
    expect(matchPath("/alerts/:id", "/alerts")).toBeNull();
    expect(matchPath("/", "/")).toEqual({});
    expect(matchPath("/reports", "/reports?status=new")).toEqual({});
    expect(matchPath("/areas/:code", "/areas/lyon%201")).toEqual({ code: "lyon 1" });
  });
  it("finds the first route that matches, in order", () => {
    const routes = [{ path: "/alerts/new" }, { path: "/alerts/:id" }];
    expect(findRoute(routes, "/alerts/new")?.route.path).toBe("/alerts/new");
    expect(findRoute(routes, "/alerts/7")?.params).toEqual({ id: "7" });
    expect(findRoute(routes, "/nothing")).toBeNull();
  });
  it("reads the hash's query", () => {
    expect(hashQuery("/reports?status=new&mine=1").get("status")).toBe("new");
    expect(hashQuery("/reports").get("status")).toBeNull();
  });
});

// The base under every map: the bundled offline base (Natural Earth countries at 1:10m, from the world-atlas
// package: coasts and borders, public domain), a tile URL template, or a PMTiles archive (raster or vector), as the
// server's TOCSIN_BASEMAP says (GET /api/v1/console/config).
import type BaseLayer from "ol/layer/Base";
import TileLayer from "ol/layer/Tile";
import VectorLayer from "ol/layer/Vector";
import VectorTileLayer from "ol/layer/VectorTile";
import VectorSource from "ol/source/Vector";
import XYZ from "ol/source/XYZ";
import TopoJSON from "ol/format/TopoJSON";
import { Fill, Stroke, Style } from "ol/style";
import { PMTilesRasterSource, PMTilesVectorSource } from "ol-pmtiles";
import { PMTiles, TileType } from "pmtiles";
import countriesUrl from "world-atlas/countries-10m.json?url";
import { VIEW } from "./geo";

export interface Basemap {
  kind: "offline" | "tiles" | "pmtiles";
  url?: string | null;
  attribution?: string;
  max_zoom: number;
}

let configured: Promise<Basemap> | null = null;
const OFFLINE: Basemap = { kind: "offline", max_zoom: 18 };

export function basemapConfig(): Promise<Basemap> {
  if (configured === null) {
    configured = fetch("/api/v1/console/config", { credentials: "same-origin" })
      .then((response) => (response.ok ? (response.json() as Promise<{ basemap?: Basemap }>) : null))
      .then((config) => config?.basemap ?? OFFLINE)
      .catch(() => OFFLINE);
  }
  return configured;
}

const landStyle = new Style({
  fill: new Fill({ color: "#f3f1ea" }),
  stroke: new Stroke({ color: "#9a968a", width: 0.8 }),
});

let offlineSource: VectorSource | null = null;

function offlineLayer(): BaseLayer {
  offlineSource ??= new VectorSource({
    url: countriesUrl,
    format: new TopoJSON({ layers: ["countries"], dataProjection: "EPSG:4326" }),
    attributions: "Natural Earth",
    overlaps: false,
  });
  return new VectorLayer({
    source: offlineSource,
    style: landStyle,
    declutter: false,
    updateWhileInteracting: false,
    properties: { name: "basemap", kind: "offline" },
  });
}

const vectorTileStyle = [
  new Style({ fill: new Fill({ color: "#efece4" }), stroke: new Stroke({ color: "#c9c4b8", width: 0.6 }) }),
];

async function pmtilesLayer(basemap: Basemap): Promise<BaseLayer> {
  const url = basemap.url ?? "/basemap.pmtiles";
  const header = await new PMTiles(url).getHeader();
  const attributions = basemap.attribution || undefined;
  if (header.tileType === TileType.Mvt) {
    return new VectorTileLayer({
      declutter: true,
      source: new PMTilesVectorSource({ url, attributions }),
      style: vectorTileStyle,
      properties: { name: "basemap", kind: "pmtiles" },
    });
  }
  return new TileLayer({
    source: new PMTilesRasterSource({ url, attributions, tileSize: [256, 256] }),
    properties: { name: "basemap", kind: "pmtiles" },
  });
}

export async function basemapLayer(basemap: Basemap): Promise<BaseLayer> {
  if (basemap.kind === "tiles" && basemap.url) {
    return new TileLayer({
      source: new XYZ({ url: basemap.url, maxZoom: basemap.max_zoom, attributions: basemap.attribution || undefined, projection: VIEW }),
      properties: { name: "basemap", kind: "tiles" },
    });
  }
  if (basemap.kind === "pmtiles") {
    try {
      return await pmtilesLayer(basemap);
    } catch (error) {
      console.warn("the PMTiles base map could not be read; using the offline base", error);
    }
  }
  return offlineLayer();
}

// Layers pages put on a MapView: GeoJSON features with a style, alert areas by severity, fitting the view.
import type OlMap from "ol/Map";
import type Feature from "ol/Feature";
import type Geometry from "ol/geom/Geometry";
import VectorLayer from "ol/layer/Vector";
import VectorSource from "ol/source/Vector";
import { Circle as CircleStyle, Fill, Stroke, Style, Text } from "ol/style";
import type { StyleLike } from "ol/style/Style";
import { isEmpty, type Extent } from "ol/extent";
import { readFeatures, type GeoJsonCollection, type GeoJsonFeature } from "./geo";

export function geojsonLayer(
  geojson: GeoJsonCollection | GeoJsonFeature | null,
  style?: StyleLike,
  name = "layer",
): VectorLayer<VectorSource<Feature<Geometry>>> {
  const source = new VectorSource<Feature<Geometry>>({ features: geojson ? readFeatures(geojson) : [] });
  return new VectorLayer({ source, style, properties: { name } });
}

export function replaceFeatures(layer: VectorLayer<VectorSource<Feature<Geometry>>>, geojson: GeoJsonCollection): void {
  const source = layer.getSource();
  source?.clear(true);
  source?.addFeatures(readFeatures(geojson));
}

/** Severity colours; pages always show the severity's word too (colour is never the only signal). */
export const SEVERITY_COLOURS: Record<string, string> = {
  Extreme: "#7a1020",
  Severe: "#c0392b",
  Moderate: "#d68910",
  Minor: "#2e86c1",
  Unknown: "#6c757d",
};

export function areaStyle(colour: string, label?: string, dashed = false): Style {
  return new Style({
    fill: new Fill({ color: `${colour}33` }),
    stroke: new Stroke({ color: colour, width: 2, lineDash: dashed ? [8, 6] : undefined }),
    text: label
      ? new Text({ text: label, font: "600 12px system-ui, sans-serif", fill: new Fill({ color: "#1b1b1b" }), stroke: new Stroke({ color: "#fff", width: 3 }), overflow: true })
      : undefined,
  });
}

export function pointStyle(colour: string, radius = 6): Style {
  return new Style({
    image: new CircleStyle({ radius, fill: new Fill({ color: colour }), stroke: new Stroke({ color: "#fff", width: 1.5 }) }),
  });
}

export function fitTo(map: OlMap, extent: Extent | null | undefined, maxZoom = 14): void {
  if (!extent || isEmpty(extent) || !Number.isFinite(extent[0])) return;
  map.getView().fit(extent, { padding: [32, 32, 32, 32], maxZoom, duration: 0 });
}

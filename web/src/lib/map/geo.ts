// GeoJSON (lon, lat; EPSG:4326) in and out of OpenLayers features (drawn in EPSG:3857). The only place the console
// converts coordinates.
import type Feature from "ol/Feature";
import GeoJSON from "ol/format/GeoJSON";
import type Geometry from "ol/geom/Geometry";

export const DATA = "EPSG:4326";
export const VIEW = "EPSG:3857";

const format = new GeoJSON({ dataProjection: DATA, featureProjection: VIEW });

export type GeoJsonGeometry = { type: string; coordinates: unknown };
export type GeoJsonFeature = { type: "Feature"; geometry: GeoJsonGeometry | null; properties?: Record<string, unknown> | null; id?: string | number };
export type GeoJsonCollection = { type: "FeatureCollection"; features: GeoJsonFeature[] };

export function readFeatures(geojson: GeoJsonCollection | GeoJsonFeature | GeoJsonGeometry): Feature<Geometry>[] {
  return format.readFeatures(geojson) as Feature<Geometry>[];
}

export function readGeometry(geojson: GeoJsonGeometry): Geometry {
  return format.readGeometry(geojson) as Geometry;
}

export function writeGeometry(geometry: Geometry, decimals = 6): GeoJsonGeometry {
  return format.writeGeometryObject(geometry, { decimals }) as unknown as GeoJsonGeometry;
}

export function writeFeatures(features: Feature<Geometry>[], decimals = 6): GeoJsonCollection {
  return format.writeFeaturesObject(features, { decimals }) as unknown as GeoJsonCollection;
}

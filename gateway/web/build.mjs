// Copies the front-end packages' dist files into static/vendor and derives the map outline.
// Run by `make web` after `npm ci` here; its output is committed, so serving needs no Node.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { feature } from "topojson-client";

const here = dirname(fileURLToPath(import.meta.url));
const modules = join(here, "node_modules");
const vendor = join(here, "static", "vendor");

const files = {
  leaflet: ["dist/leaflet.js", "dist/leaflet.css", "dist/images/marker-icon.png", "dist/images/marker-icon-2x.png",
            "dist/images/marker-shadow.png", "dist/images/layers.png", "dist/images/layers-2x.png", "LICENSE"],
  // The UMD build carries @kurkle/color inside it, hence that package's licence too.
  "chart.js": ["dist/chart.umd.min.js", "LICENSE.md"],
  "@kurkle/color": ["LICENSE.md"],
  "world-atlas": ["LICENSE"],
  "topojson-client": ["LICENSE"],
};

rmSync(vendor, { recursive: true, force: true });
for (const [pkg, list] of Object.entries(files)) {
  const version = JSON.parse(readFileSync(join(modules, pkg, "package.json"), "utf8")).version;
  for (const file of list) {
    const target = join(vendor, pkg.replace("@", "").replace("/", "-"), file.replace(/^dist\//, ""));
    mkdirSync(dirname(target), { recursive: true });
    copyFileSync(join(modules, pkg, file), target);
  }
  console.log(`vendor: ${pkg} ${version}`);
}

// RULE: no internet tiles — the map draws the outlines of the three countries the gateway serves.
const COUNTRIES = { "528": "NL", "056": "BE", "276": "DE" };
const atlas = JSON.parse(readFileSync(join(modules, "world-atlas", "countries-50m.json"), "utf8"));
const all = feature(atlas, atlas.objects.countries);
const round = (c) => (typeof c[0] === "number" ? [+c[0].toFixed(4), +c[1].toFixed(4)] : c.map(round));
const outline = {
  type: "FeatureCollection",
  features: all.features
    .filter((f) => COUNTRIES[f.id])
    .map((f) => ({ type: "Feature", properties: { iso: COUNTRIES[f.id], name: f.properties.name },
                   geometry: { type: f.geometry.type, coordinates: round(f.geometry.coordinates) } })),
};
if (outline.features.length !== 3) throw new Error(`expected NL, BE and DE in world-atlas, found ${outline.features.length}`);
mkdirSync(join(vendor, "..", "geo"), { recursive: true });
writeFileSync(join(vendor, "..", "geo", "nl-be-de.geojson"), JSON.stringify(outline));
writeFileSync(join(vendor, "..", "geo", "SOURCE.txt"),
  "Derived by gateway/web/build.mjs from world-atlas (countries-50m, Natural Earth data, public domain; " +
  "package licence in vendor/world-atlas/LICENSE) with topojson-client.\n");
console.log("geo: nl-be-de.geojson");

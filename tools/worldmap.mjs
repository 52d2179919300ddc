// Builds dashboard/static/world.svg, the dashboard's world map: per country its ISO 3166-1 alpha-2
// code (what GeoIP stores in visit:country) and an SVG path in the Natural Earth projection,
// 1000 units wide. Run once with `npm run worldmap` after changing the pinned packages;
// the output is committed, so neither the server nor CI needs Node for it.
//
// Outlines: world-atlas (npm, ISC), TopoJSON of Natural Earth's 1:110m admin-0 countries,
// which Natural Earth puts in the public domain. Codes: i18n-iso-countries (npm, MIT) maps
// world-atlas's ISO numeric ids to alpha-2.
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const countries = require("i18n-iso-countries");
const atlasVersion = require("world-atlas/package.json").version;
const codesVersion = require("i18n-iso-countries/package.json").version;
const topology = JSON.parse(
  readFileSync(require.resolve("world-atlas/countries-110m.json"), "utf8"),
);

const WIDTH = 1000;
const ANTARCTICA = "010";
// Three outlines have no ISO numeric id. Kosovo has the user-assigned XK, which GeoIP
// databases report and i18n-iso-countries knows by name. Northern Cyprus and Somaliland are
// drawn as part of the country GeoIP reports for visitors there (CY, SO).
const UNNUMBERED = { "N. Cyprus": "CY", Somaliland: "SO" };

// TopoJSON arcs are delta-encoded integers; the transform turns them into degrees.
const { scale, translate } = topology.transform;
const arcs = topology.arcs.map((arc) => {
  let x = 0;
  let y = 0;
  return arc.map(([dx, dy]) => {
    x += dx;
    y += dy;
    return [x * scale[0] + translate[0], y * scale[1] + translate[1]];
  });
});

function ring(indexes) {
  const points = [];
  for (const index of indexes) {
    const arc = index < 0 ? arcs[~index].slice().reverse() : arcs[index];
    // Each arc starts where the previous one ended.
    points.push(...(points.length ? arc.slice(1) : arc));
  }
  return points;
}

// Fiji's and eastern Russia's rings cross the antimeridian, jumping from 180 to -180 degrees in
// one step: drawn as they are, a band would cross the whole map. Each becomes two rings, the
// far side's points moved onto its edge (so adding no area), one ring per side.
function split(points) {
  const jumps = points.some((p, i) => i > 0 && Math.abs(p[0] - points[i - 1][0]) > 180);
  if (!jumps) return [points];
  return [
    points.map(([x, y]) => [x < 0 ? 180 : x, y]),
    points.map(([x, y]) => [x > 0 ? -180 : x, y]),
  ];
}

// Natural Earth I (Šavrič et al. 2011), as d3-geo's geoNaturalEarth1Raw.
function project([longitude, latitude]) {
  const lambda = (longitude * Math.PI) / 180;
  const phi = (latitude * Math.PI) / 180;
  const phi2 = phi * phi;
  const phi4 = phi2 * phi2;
  const x =
    lambda * (0.8707 - 0.131979 * phi2 + phi4 * (-0.013791 + phi4 * (0.003971 * phi2 - 0.001529 * phi4)));
  const y =
    phi * (1.007226 + phi2 * (0.015085 + phi4 * (-0.044475 + 0.028874 * phi2 - 0.005916 * phi4)));
  return [x, -y];
}

const shapes = new Map(); // code -> list of projected rings
for (const geometry of topology.objects.countries.geometries) {
  if (geometry.id === ANTARCTICA) continue;
  const name = geometry.properties.name;
  const code =
    geometry.id !== undefined
      ? countries.numericToAlpha2(geometry.id)
      : (UNNUMBERED[name] ?? countries.getAlpha2Code(name, "en"));
  if (!code) throw new Error(`no alpha-2 code for ${geometry.id} ${name}`);
  const polygons = geometry.type === "Polygon" ? [geometry.arcs] : geometry.arcs;
  const rings = shapes.get(code) ?? [];
  for (const polygon of polygons) {
    for (const indexes of polygon) rings.push(...split(ring(indexes)).map((r) => r.map(project)));
  }
  shapes.set(code, rings);
}

// Fit the drawing to its bounds, WIDTH units wide.
const all = [...shapes.values()].flat(2);
const minX = Math.min(...all.map((p) => p[0]));
const maxX = Math.max(...all.map((p) => p[0]));
const minY = Math.min(...all.map((p) => p[1]));
const maxY = Math.max(...all.map((p) => p[1]));
const k = WIDTH / (maxX - minX);
const height = Math.ceil((maxY - minY) * k);

// Coordinates in tenths of a unit, as relative moves between rounded points: exact, and
// about half the size of absolute ones. Points that round onto the previous one are dropped,
// and so are rings left with fewer than three (too small to see at this scale).
function pathOf(rings) {
  let d = "";
  let [px, py] = [0, 0];
  for (const points of rings) {
    const grid = points.map(([x, y]) => [
      Math.round((x - minX) * k * 10),
      Math.round((y - minY) * k * 10),
    ]);
    const kept = [grid[0]];
    for (const [x, y] of grid.slice(1)) {
      const [lx, ly] = kept[kept.length - 1];
      if (x !== lx || y !== ly) kept.push([x, y]);
    }
    const [fx, fy] = kept[0];
    const [ex, ey] = kept[kept.length - 1];
    if (ex === fx && ey === fy) kept.pop(); // z closes the ring
    if (kept.length < 3 || area(kept) === 0) continue;
    const moves = kept.slice(1).map(([x, y], i) => [x - kept[i][0], y - kept[i][1]]);
    d += "m" + numbers([fx - px, fy - py]) + "l" + numbers(moves.flat()) + "z";
    [px, py] = [fx, fy];
  }
  return d;
}

function area(points) {
  return points.reduce((sum, [x, y], i) => {
    const [nx, ny] = points[(i + 1) % points.length];
    return sum + x * ny - nx * y;
  }, 0);
}

// Tenths as SVG numbers with the fewest separators: "-" and a second "." need none.
function numbers(values) {
  let text = "";
  let previous = "";
  for (const value of values) {
    const number = (value / 10).toString().replace(/^(-?)0\./, "$1.");
    const joined =
      !previous || number.startsWith("-") || (number.startsWith(".") && previous.includes("."));
    text += (joined ? "" : " ") + number;
    previous = number;
  }
  return text;
}

const about =
  `Natural Earth 1:110m admin-0 countries (public domain, naturalearthdata.com) from the npm ` +
  `package world-atlas ${atlasVersion} (ISC); ISO 3166-1 alpha-2 codes from i18n-iso-countries ` +
  `${codesVersion} (MIT). Natural Earth projection, Antarctica left out, N. Cyprus drawn as CY ` +
  `and Somaliland as SO. Made by tools/worldmap.mjs (npm run worldmap).`;
const viewBox = `0 0 ${WIDTH} ${height}`;
// A sprite: pages draw <use href="world.svg#world"> for every country and one <use> per country
// with visitors, so the outlines are fetched once and cached, not sent in every page. No fill
// here: each <use>'s class gives it.
const paths = [...shapes.entries()]
  .sort(([a], [b]) => a.localeCompare(b))
  .map(([code, rings]) => `<path id="${code}" d="${pathOf(rings)}"/>`);
const svg =
  `<svg xmlns="http://www.w3.org/2000/svg" viewBox="${viewBox}">\n<!-- ${about} -->\n` +
  `<g id="world" fill-rule="evenodd">\n${paths.join("\n")}\n</g>\n</svg>\n`;
writeFileSync(new URL("../dashboard/static/world.svg", import.meta.url), svg);
console.log(`${paths.length} countries, viewBox ${viewBox}`);

// Copies the browser builds admin-service serves into its static folder (committed, so `make run`
// needs no npm). Run with `npm ci && npm run vendor` after changing package.json.
import { copyFileSync, mkdirSync } from "node:fs";

const target = "../src/admin_service/static/vendor";
mkdirSync(target, { recursive: true });
copyFileSync("node_modules/chart.js/dist/chart.umd.min.js", `${target}/chart.umd.min.js`);
copyFileSync("node_modules/chart.js/LICENSE.md", `${target}/chart.js.LICENSE.md`);
console.log("vendored chart.js into", target);

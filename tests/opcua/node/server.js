// An independent OPC UA server for transferline's interop tests and benchmark (node-opcua).
//
// Objects/Plant/Line1/Asset_<a>/Signal_<s>: Double variables, all set every --interval ms to the
// tick counter k (0, 1, 2, ...) with source time t0 + k * interval, and historized, so a client
// can check that it got every value exactly once: per variable, 0..K with no hole and no repeat.
//
// node-opcua limits sampling and publishing to 50 ms unless told otherwise: the server advertises
// minSupportedSampleRate 0, variables have minimumSamplingInterval 0 (exception-based), and the
// subscription floor is lowered.
//
// usage: node server.js --port P --variables N --assets A --interval MS [--history N] [--ticks K]
//                       [--start-at EPOCH_MS]   (tick 0 at that wall-clock time; default: at once)
"use strict";
const { OPCUAServer, Variant, DataType, StatusCodes, Subscription } = require("node-opcua");

function arg(name, fallback) {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

async function main() {
    const port = arg("port", 4840);
    const nVariables = arg("variables", 100);
    const nAssets = arg("assets", 10);
    const interval = arg("interval", 10);
    const history = arg("history", 20000);
    const maxTicks = arg("ticks", 0);
    const startAt = arg("start-at", 0);
    Subscription.minimumPublishingInterval = 10;
    const server = new OPCUAServer({
        port,
        hostname: "127.0.0.1",
        serverCapabilities: { minSupportedSampleRate: 0, maxMonitoredItemsQueueSize: 60000 },
    });
    await server.initialize();
    const addressSpace = server.engine.addressSpace;
    const ns = addressSpace.getOwnNamespace();
    const plant = ns.addObject({ organizedBy: addressSpace.rootFolder.objects, browseName: "Plant" });
    const line = ns.addObject({ componentOf: plant, browseName: "Line1" });
    const variables = [];
    const perAsset = Math.ceil(nVariables / nAssets);
    for (let a = 0; a < nAssets && variables.length < nVariables; a++) {
        const asset = ns.addObject({ componentOf: line, browseName: `Asset_${a}` });
        for (let s = 0; s < perAsset && variables.length < nVariables; s++) {
            const v = ns.addVariable({
                componentOf: asset,
                browseName: `Signal_${s}`,
                nodeId: `s=Plant/Line1/Asset_${a}/Signal_${s}`,
                dataType: "Double",
                minimumSamplingInterval: 0,
                value: { dataType: DataType.Double, value: -1 },
            });
            addressSpace.installHistoricalDataNode(v, { maxOnlineValues: history });
            variables.push(v);
        }
    }
    await server.start();
    const t0 = startAt || Date.now();
    let k = 0;
    const timer = setInterval(() => {
        const now = Date.now();
        // catch up on ticks the timer missed, each with its own source time
        while (t0 + k * interval <= now && (!maxTicks || k < maxTicks)) {
            const stamp = new Date(t0 + k * interval);
            const value = new Variant({ dataType: DataType.Double, value: k });
            for (const v of variables) {
                v.setValueFromSource(value, StatusCodes.Good, stamp);
            }
            k++;
        }
    }, Math.max(1, interval));
    console.log(`READY ${port} ${variables.length}`);
    const shutdown = async () => {
        clearInterval(timer);
        console.log(`TICKS ${k}`);
        await server.shutdown(0);
        process.exit(0);
    };
    process.on("SIGTERM", shutdown);
    process.on("SIGINT", shutdown);
}

main().catch((err) => {
    console.error(err);
    process.exit(1);
});

// Compiles TestNFT.sol with solc-js (npm `solc`) into TestNFT.json: ABI and bytecode of
// each contract. Run by `make contracts`; the output is committed so tests need no compiler.
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const source = path.join(__dirname, "TestNFT.sol");
const input = {
  language: "Solidity",
  sources: { "TestNFT.sol": { content: fs.readFileSync(source, "utf8") } },
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: "paris",
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors || []).filter((e) => e.severity === "error");
if (errors.length) {
  for (const e of errors) console.error(e.formattedMessage);
  process.exit(1);
}
const artifact = { compiler: solc.version(), contracts: {} };
for (const [name, c] of Object.entries(output.contracts["TestNFT.sol"])) {
  artifact.contracts[name] = { abi: c.abi, bytecode: "0x" + c.evm.bytecode.object };
}
fs.writeFileSync(path.join(__dirname, "TestNFT.json"), JSON.stringify(artifact, null, 1) + "\n");
console.log("wrote TestNFT.json with", Object.keys(artifact.contracts).join(", "));

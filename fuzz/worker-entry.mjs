// A worker thread gets no --import hooks of its parent: TypeScript is registered here.
import { register } from "tsx/esm/api";
register();
await import("./worker.ts");

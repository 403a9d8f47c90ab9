// Starts a model worker process. node-llama-cpp is imported before tsx's loader is registered:
// through the loader its hundreds of files take ~3x longer to load, and a loader given with
// --import would also slow the binary check node-llama-cpp runs in a child of its own.
await import('node-llama-cpp')
const { register } = await import('tsx/esm/api')
register()
await import('./llama-worker.ts')

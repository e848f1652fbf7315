// The HuggingFace hub client: files and listings through the cache shared with Python's
// huggingface_hub, models by id or directory.
import { HubClient, defaultHubClient, type HubFileRequest, type HubListing, type RepoType } from './client.js';

export { COMMIT_RE, RepoCache, hfHome, hubCacheDir, repoFolderName } from './cache.js';
export {
  DEFAULT_ENDPOINT,
  HubClient,
  HubError,
  defaultHubClient,
  hubToken,
  normalizeEtag,
  type HubClientOptions,
  type HubErrorKind,
  type HubFileRequest,
  type HubListing,
  type RepoType,
} from './client.js';
export {
  MODEL_CONFIG_FILE,
  OPTIONAL_MODEL_FILES,
  SAFETENSORS_INDEX,
  TOKENIZER_FILES,
  checkModelDir,
  looksLikePath,
  modelFilesToFetch,
  resolveModelDir,
  shardsOfIndex,
  type ResolveModelOptions,
} from './model.js';

function clientFor(cacheDir: string | undefined): HubClient {
  return cacheDir === undefined ? defaultHubClient() : new HubClient({ cacheDir });
}

/** The local path of a hub file (downloaded into the cache when needed), configured from the environment. */
export function resolveHubFile(req: HubFileRequest & { cacheDir?: string }): Promise<string> {
  return clientFor(req.cacheDir).resolveFile(req);
}

/** The files of a hub repository at a revision (default 'main'), configured from the environment. */
export function listHubFiles(repo: string, repoType: RepoType = 'model', revision = 'main', cacheDir?: string): Promise<HubListing> {
  return clientFor(cacheDir).listFiles(repo, repoType, revision);
}

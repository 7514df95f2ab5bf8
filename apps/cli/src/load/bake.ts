// Loaded by `buildyard bake` only: the bake file parsers and, through runBuild, the build machinery.
export { runBake } from '@buildyard/bake';

/** The model operators, as one plugin list (the built-in module spreads it). */
import intentModel from './intent.js';
import churnModel from './churn.js';

export const modelPlugins = [intentModel, churnModel];
export { intentModel, churnModel };

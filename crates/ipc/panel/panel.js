// The debug panel's script (being written).
import { connect } from "/panel/client/index.js";

void connect;
